"""The warm-up builds napari layer models on a worker thread, where no Qt object may be made."""

from __future__ import annotations

import threading

from opticstream_napari.viewer_link.warmup import is_warm, warm_up_layers


def test_layers_warm_up_off_the_gui_thread(qapp) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            warm_up_layers()
        except BaseException as error:  # noqa: BLE001 - reported to the test thread
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive() and errors == []
    assert is_warm()
