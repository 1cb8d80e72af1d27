"""The authors' layout rendered through a family's own chat template (decisions.md D-MODELS-14).

The authors' training layout (D-MODELS-10) is a conversation: the system turn, an EMPTY user turn,
then the assistant turn whose content is the image marker, ``\\n``, ``Question: ...\\nProcess:`` and
the steps. Every family marks turns its own way (ChatML, Gemma's ``<start_of_turn>``, Mistral's
``[INST]``, Idefics3's ``User:``), so the prefix, everything before the assistant's content, is
rendered by the family's chat template from exactly that conversation, with a sentinel as the
assistant's content; the text before the sentinel is the prefix. The formatter then appends the
image placeholder and the text as token ids, so the template never sees a step and truncation,
``<prm>`` positions and the image-token counts stay the formatter's.
"""

from __future__ import annotations

from typing import Any

#: The assistant content while rendering: private-use characters no template produces or strips.
SENTINEL = "\ue000mprm-assistant-content\ue000"


def _conversation(system: str | None, *, parts: bool) -> list[dict[str, Any]]:
    def content(text: str) -> Any:
        return [{"type": "text", "text": text}] if parts else text

    turns = [] if system is None else [{"role": "system", "content": content(system)}]
    return turns + [{"role": "user", "content": content("")}, {"role": "assistant", "content": content(SENTINEL)}]


def checkpoint_template(tokenizer: Any) -> str | None:
    """The chat template the checkpoint ships (``chat_template.jinja`` or ``tokenizer_config.json``),
    its default one when it has several; ``None`` when it has none."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    return template or None


def render_prefix(tokenizer: Any, template: str, system: str | None) -> str:
    """The text a chat template puts before the assistant's content in the authors' layout.

    Templates take message content as a string or as a list of typed parts; a template that
    accepts only one of the two is rendered with that one (string first). An error names what the
    template did with both.
    """
    problems = []
    for parts in (False, True):
        try:
            text = tokenizer.apply_chat_template(_conversation(system, parts=parts), chat_template=template,
                                                 tokenize=False, add_generation_prompt=False)
        except Exception as exc:  # a template error (jinja, or the template's raise_exception)
            problems.append(f"{'parts' if parts else 'string'} content: {type(exc).__name__}: {exc}")
            continue
        if isinstance(text, list):
            text = text[0]
        if text.count(SENTINEL) == 1:
            return text.split(SENTINEL)[0]
        problems.append(f"{'parts' if parts else 'string'} content: the assistant's content appears "
                        f"{text.count(SENTINEL)} times in the rendered text")
    raise ValueError("cannot render the authors' layout (system, empty user turn, assistant turn) through this "
                     "chat template: " + "; ".join(problems) + ". Set BackboneSpec.chat_prefix to a fixed prefix "
                     "or chat_template to a template that renders it (docs/models.md)")


def layout_prefix(tokenizer: Any, spec: Any, *, prompt_style: str) -> str:
    """The prompt text before the assistant's content for ``spec`` (a :class:`BackboneSpec`).

    ``authors_eval`` uses the spec's fixed ``eval_chat_prefix`` when it has one (their evaluation
    script's quirk, ChatML families); a fixed ``chat_prefix`` wins over templates; otherwise the
    checkpoint's own chat template renders the layout, or the spec's ``chat_template`` for a
    checkpoint saved without one.
    """
    fill = {"system": spec.system_prompt or ""}
    if prompt_style == "authors_eval" and spec.eval_chat_prefix is not None:
        return spec.eval_chat_prefix.format(**fill)
    if spec.chat_prefix is not None:
        return spec.chat_prefix.format(**fill)
    template = checkpoint_template(tokenizer) or spec.chat_template
    if template is None:
        raise ValueError("the checkpoint has no chat template and its backbone entry sets neither chat_template nor "
                         "chat_prefix; add one of them to the BackboneSpec (docs/models.md)")
    return render_prefix(tokenizer, template, spec.system_prompt)


def prefix_bos(tokenizer: Any, prefix: str) -> bool:
    """Whether the formatter must open the sequence with the tokenizer's BOS: when the tokenizer
    adds one to every text (InternLM2, Gemma, Llama 3) and the rendered prefix does not already
    start with it (templates that write ``{{ bos_token }}`` themselves)."""
    bos = getattr(tokenizer, "bos_token", None)
    return not (bos and prefix.startswith(str(bos)))
