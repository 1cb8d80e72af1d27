"""Best-of-N aggregation on a hand-made file and checkpoint-curve bookkeeping (no model)."""

from __future__ import annotations

import json

import pytest

from mprm.errors import UserError
from mprm.eval.bon import bon_results, candidate_items, pick, read_bon
from mprm.eval.curves import curve_summary, find_checkpoints, plot_curve
from mprm.eval.tables import render_bon_md


def cand(n, correct):
    return {"steps": [f"step {i}" for i in range(n)], "correct": correct}


BON_ROWS = [
    {"id": "q1", "data_source": "A", "image": ["a.png"], "question": "?", "answer": "1",
     "candidates": [cand(2, False), cand(2, True), cand(1, False)]},
    {"id": "q2", "data_source": "A", "images": "b.png", "question": "?", "answer": "2",
     "candidates": [cand(3, True), cand(2, False)]},
    {"id": "q3", "data_source": "B", "image": ["c.png", "d.png"], "question": "?", "answer": "3",
     "candidates": [cand(1, False), cand(1, False), cand(2, True), cand(1, True)]},
    {"data_source": "B", "image": ["e.png"], "question": "?", "candidates": [cand(1, False)]},  # id: line 4
]
# Predetermined step scores (aggregates: mean / min / last)
SCORES = {
    "q1": [[0.9, 0.2], [0.7, 0.6], [0.4]],            # mean .55 .65 .40 -> 1 (T); min .2 .6 .4 -> 1 (T); last -> 1 (T)
    "q2": [[0.8, 0.8, 0.1], [0.5, 0.6]],              # mean .567 .55 -> 0 (T); min .1 .5 -> 1 (F); last .1 .6 -> 1 (F)
    "q3": [[0.3], [0.3], [0.2, 0.9], [0.1]],          # mean .3 .3 .55 .1 -> 2 (T); min tie .3 .3 -> 0 (F); last -> 2 (T)
    "4": [[0.5]],                                      # one incorrect candidate: F everywhere
}


@pytest.fixture()
def bon_rows(tmp_path):
    p = tmp_path / "bon.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in BON_ROWS))
    return read_bon(p)


def test_evaluate_bon_as_a_library_checks_its_inputs_before_loading(tmp_path):
    """The checks are the library's, not only eval.py's: no model is loaded (``None`` is never
    touched), each failure is a UserError naming what to fix."""
    from mprm.eval.bon import evaluate_bon
    from mprm.eval.settings import EvalSettings

    bon = tmp_path / "bon.jsonl"
    bon.write_text("".join(json.dumps(r) + "\n" for r in BON_ROWS))
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"nope.jsonl: no such file \(--bon\)"):
        evaluate_bon(tmp_path / "nope.jsonl", None, out, EvalSettings(image_root=tmp_path))
    with pytest.raises(UserError, match=r"--bon needs --image-root"):
        evaluate_bon(bon, None, out, EvalSettings())
    with pytest.raises(UserError, match=r"no_images: no such folder \(--image-root\)"):
        evaluate_bon(str(bon), None, out, EvalSettings(image_root=tmp_path / "no_images"))
    with pytest.raises(UserError, match=r"a.png"):  # the root exists, the pictures do not
        evaluate_bon(bon, None, out, EvalSettings(image_root=tmp_path))
    assert not (out / "bon.json").exists()


def test_read_bon_accepts_image_and_images(bon_rows):
    assert [r["id"] for r in bon_rows] == ["q1", "q2", "q3", "4"]
    assert bon_rows[1]["images"] == ["b.png"] and bon_rows[2]["images"] == ["c.png", "d.png"]
    items = candidate_items(bon_rows)
    assert len(items) == 10 and items[3]["id"] == "q2#0" and items[3]["steps"] == ["step 0", "step 1", "step 2"]


def test_read_bon_names_bad_field(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({**BON_ROWS[0], "candidates": [{"steps": ["s"], "correct": "yes"}]}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: candidates\[0\].correct must be true or false"):
        read_bon(p)


def test_pick_ties_go_to_the_earliest():
    assert pick([[0.3], [0.3], [0.1]], "min") == (0, [0.3, 0.3, 0.1])
    with pytest.raises(ValueError, match="aggregate must be one of"):
        pick([[0.3]], "max")


@pytest.mark.parametrize(
    "aggregate, picks, a, b, overall",
    [
        # A: q1 T, q2 T -> 1; B: q3 T, q4 F -> 1/2; overall 3/4
        ("mean", [1, 0, 2, 0], 1.0, 0.5, 0.75),
        # A: q1 T, q2 F -> 1/2; B: q3 F, q4 F -> 0; overall 1/4
        ("min", [1, 1, 0, 0], 0.5, 0.0, 0.25),
        # A: T, F -> 1/2; B: T, F -> 1/2; overall 1/2
        ("last", [1, 1, 2, 0], 0.5, 0.5, 0.5),
    ],
)
def test_bon_results_hand_computed(bon_rows, aggregate, picks, a, b, overall):
    res = bon_results(bon_rows, SCORES, aggregate=aggregate)
    assert [p["picked"] for p in res["picks"]] == picks
    assert res["per_source"]["A"]["reranked"] == pytest.approx(a)
    assert res["per_source"]["B"]["reranked"] == pytest.approx(b)
    assert res["overall"]["reranked"] == pytest.approx(overall)
    # first: q1 F, q2 T, q3 F, q4 F -> A 1/2, B 0, overall 1/4
    assert (res["per_source"]["A"]["first"], res["per_source"]["B"]["first"], res["overall"]["first"]) == (0.5, 0.0, 0.25)
    # random (mean correctness): q1 1/3, q2 1/2, q3 2/4, q4 0 -> A 5/12, B 1/4, overall (4/3)/4 = 1/3
    assert res["per_source"]["A"]["random"] == pytest.approx(5 / 12)
    assert res["per_source"]["B"]["random"] == pytest.approx(1 / 4)
    assert res["overall"]["random"] == pytest.approx(1 / 3)
    # oracle: q1..q3 have a correct candidate, q4 not -> A 1, B 1/2, overall 3/4
    assert (res["per_source"]["A"]["oracle"], res["per_source"]["B"]["oracle"], res["overall"]["oracle"]) == (1.0, 0.5, 0.75)
    assert res["overall"]["n_items"] == 4


def test_bon_md(bon_rows):
    md = render_bon_md(bon_results(bon_rows, SCORES, aggregate="mean"))
    assert "| Source | items | reranked (mean) | first | random | oracle |" in md
    assert "| A | 2 | 100.00 | 50.00 | 41.67 | 100.00 |" in md
    assert "| Overall | 4 | 75.00 | 25.00 | 33.33 | 75.00 |" in md


def test_find_checkpoints_both_layouts_and_final_step(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-000100").mkdir(parents=True)
    (run / "checkpoints" / "step-000100" / "mprm_config.json").write_text("{}")  # model in the folder itself
    (run / "checkpoints" / "step-000050" / "model").mkdir(parents=True)
    (run / "checkpoints" / "step-000050" / "model" / "mprm_config.json").write_text("{}")
    (run / "checkpoints" / "notes").mkdir()
    (run / "final" / "model").mkdir(parents=True)
    (run / "final" / "meta.json").write_text(json.dumps({"step": 120}))
    found = find_checkpoints(run)
    assert [(c["name"], c["step"], c["final"]) for c in found] == [
        ("step-000050", 50, False), ("step-000100", 100, False), ("final", 120, True)]
    assert found[0]["path"].endswith("step-000050/model") and found[1]["path"].endswith("step-000100")
    assert found[2]["path"].endswith("final/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: no checkpoints/step-N/ folders and no final/ folder"):
        find_checkpoints(tmp_path / "empty")
    with pytest.raises(UserError, match="nowhere: no such run folder"):
        find_checkpoints(tmp_path / "nowhere")


def test_curve_summary_names_best_per_threshold_and_final(tmp_path):
    def pt(name, step, fixed, oracle, final=False):
        return {"name": name, "step": step, "path": f"/r/{name}", "final": final,
                "overall": {"fixed": fixed, "dev": None, "oracle": oracle}}

    points = [pt("step-000050", 50, 0.60, 0.70), pt("step-000100", 100, 0.64, 0.69), pt("final", 120, 0.64, 0.71, True)]
    s = curve_summary(points)
    assert s["best"]["fixed"]["name"] == "step-000100"  # 0.64 ties with final: the earlier wins
    assert s["best"]["oracle"]["name"] == "final" and "dev" not in s["best"]
    assert s["final"]["name"] == "final"
    plot_curve(s, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]  # written through a temporary file
