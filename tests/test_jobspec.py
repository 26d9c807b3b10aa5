import pytest

from ink_spawner.jobspec import JobSpec, JobSpecError, parse_memory_mb, parse_walltime_s


def spec(**overrides):
    fields = dict(user="alice", name="jupyter", command=("ink-session", "--", "x"),
                  env={"JUPYTERHUB_API_TOKEN": "secret"}, workdir="/home/alice",
                  output_path="/home/alice/.ink/logs/j.log")
    fields.update(overrides)
    return JobSpec(**fields)


@pytest.mark.parametrize("text, mb", [("6G", 6144), ("512M", 512), ("2.5GiB", 2560), ("1T", 1048576),
                                       ("100", 100), (2048, 2048)])
def test_memory_parsing(text, mb):
    assert parse_memory_mb(text) == mb


@pytest.mark.parametrize("text", ["", "six gigs", "-1G", "6X", True, "0M", "9" * 400, "\u0663G"])
def test_memory_rejects_garbage(text):
    with pytest.raises(JobSpecError) as e:
        parse_memory_mb(text)
    assert e.value.field == "memory"


@pytest.mark.parametrize("text, seconds", [("24:00:00", 86400), ("1-00:00:00", 86400), ("1:30", 5400),
                                            ("0:01:00", 60), (3600, 3600)])
def test_walltime_parsing(text, seconds):
    assert parse_walltime_s(text) == seconds


@pytest.mark.parametrize("text", ["1 day", "10:99:00", "0:00:30", "24h", "; rm -rf /"])
def test_walltime_rejects_garbage(text):
    with pytest.raises(JobSpecError) as e:
        parse_walltime_s(text)
    assert e.value.field == "walltime"


def test_valid_spec_and_job_name():
    s = spec(cpus=4, partition="debug", tags={"hub": "ink", "user": "alice"})
    assert s.job_name == "ink-jupyter"
    assert s.command == ("ink-session", "--", "x")
    assert "secret" not in repr(s), "the environment carries the server token and must not be in repr"


@pytest.mark.parametrize("field, value", [
    ("user", "-rf"), ("user", "root;id"), ("user", "Alice Smith"), ("name", "../x"),
    ("name", "a b"), ("command", ()), ("command", ("a\0b",)), ("workdir", "relative"),
    ("output_path", "/tmp/x\nmalicious"), ("cpus", 0), ("cpus", True), ("cpus", "2"),
    ("memory_mb", 0), ("walltime_s", 10), ("gpus", -1), ("partition", "debug --uid=0"),
    ("account", "a,b c"), ("qos", "-x"), ("image", "docker://x"), ("tags", {"user": "a b"}),
    ("env", {"BAD KEY": "x"}), ("env", {"K": "x\0y"}),
])
def test_invalid_fields_are_named(field, value):
    with pytest.raises(JobSpecError) as e:
        spec(**{field: value})
    assert e.value.field == field
