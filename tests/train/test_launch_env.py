"""The launch as ``accelerate launch`` describes it in the environment (``mprm.train.strategy.launch_env``),
the one reader of its variables."""

from __future__ import annotations

from mprm.train.strategy import launch_env


def test_plain_python_is_one_unlaunched_process():
    env = launch_env({})
    assert not env.launched and (env.world_size, env.machines, env.cpu, env.deepspeed) == (1, 1, False, False)


def test_a_deepspeed_launch_over_two_machines():
    env = launch_env({"ACCELERATE_USE_DEEPSPEED": "true", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4",
                      "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3", "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": "cpu"})
    assert env.launched and env.deepspeed and (env.world_size, env.local_world_size, env.machines) == (8, 4, 2)
    assert (env.zero_stage, env.offload_param_device, env.offload_optimizer_device) == (3, "cpu", None)
    assert env.deepspeed_config_file is None


def test_flags_and_defaults():
    env = launch_env({"WORLD_SIZE": "2", "ACCELERATE_USE_CPU": "True", "ACCELERATE_USE_DEEPSPEED": "false",
                      "ACCELERATE_DEEPSPEED_CONFIG_FILE": "launch/deepspeed/zero2.json"})
    assert env.launched and env.cpu and not env.deepspeed and env.machines == 1
    assert env.zero_stage == 2 and env.deepspeed_config_file == "launch/deepspeed/zero2.json"
