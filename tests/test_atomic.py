"""The one atomic writer (lut.atomic): concurrent writers, failures, and errors that name the target."""
import threading

import pytest

from lut.atomic import atomic_open, atomic_path, write_bytes_atomic, write_text_atomic


def leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_threads_writing_one_target_never_collide_or_tear(tmp_path):
    """8 threads x 25 writes of distinct 64 KiB contents to one file: every write lands whole, no temp left."""
    target = tmp_path / "table.json"
    contents = {f"{t}-{i}": (f"{t}-{i}:".encode() * 8000)[:65536] for t in range(8) for i in range(25)}
    errors, start = [], threading.Barrier(8)

    def writer(t: int) -> None:
        start.wait()
        for i in range(25):
            try:
                write_bytes_atomic(target, contents[f"{t}-{i}"])
                assert target.read_bytes() in contents.values()
            except Exception as exc:  # collected: an assertion in a thread would be lost
                errors.append(repr(exc))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_bytes() in contents.values()
    assert leftovers(tmp_path, {"table.json"}) == []


def test_failure_inside_the_block_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer died"):
        with atomic_open(target, "wb") as handle:
            handle.write(b"half")
            raise RuntimeError("writer died")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, {"model.onnx"}) == []


def test_target_that_is_a_directory_names_it_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    target.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        write_text_atomic(target, "{}")
    assert info.value.filename == str(target)
    assert leftovers(tmp_path, {"out.json"}) == []


def test_missing_folder_without_parents_names_the_target(tmp_path):
    target = tmp_path / "nope" / "out.csv"
    with pytest.raises(FileNotFoundError) as info:
        with atomic_open(target, "w", parents=False) as handle:
            handle.write("x")
    assert info.value.filename == str(target)
    assert write_text_atomic(target, "x", durable=True).read_text() == "x"  # parents=True by default


def test_temp_keeps_the_suffix_for_writers_that_choose_a_format_by_it(tmp_path):
    with atomic_path(tmp_path / "lib.so") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".lib.") and tmp.suffix == ".so"
        tmp.write_bytes(b"\x7fELF")
    assert (tmp_path / "lib.so").read_bytes() == b"\x7fELF"


def test_mode_other_than_whole_file_write_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "x", "a"):
            pass
