"""segtrain.cpu: glibc keeping freed memory for reuse, set by the CLI (speed only)."""


def test_keep_freed_memory_is_logged_by_the_cli_and_can_be_turned_off(caplog):
    import logging

    from segtrain.job import configure_process
    from segtrain.schemas import JobConfig

    with caplog.at_level(logging.INFO, logger="segtrain"):
        configure_process(JobConfig(keep_freed_memory=False))
    assert "memory:" not in caplog.text
    with caplog.at_level(logging.INFO, logger="segtrain"):
        configure_process(JobConfig())  # the default: on
    import platform

    glibc = platform.libc_ver()[0] == "glibc"
    expected = "glibc malloc keeps freed blocks below 1 GiB" if glibc else "left as it is"
    assert "(job.keep_freed_memory)" in caplog.text and expected in caplog.text
