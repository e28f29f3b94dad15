"""Closing napari releases the widget and stops everything it started (engine, state follower, timer)."""

from __future__ import annotations

import gc
import threading
import weakref

from qtpy.QtWidgets import QApplication

from opticstream_napari._qt.main_widget import OpticStreamWidget
from opticstream_napari.cli.simulate_cmd import SimulatedRun
from opticstream_napari.viewer_link import EngineOptions


def _our_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("opticstream")]


def test_closing_napari_stops_the_engine_and_releases_the_widget(make_napari_viewer, tiny_run: SimulatedRun, qtbot):
    viewer = make_napari_viewer()
    widget = OpticStreamWidget(viewer)
    viewer.window.add_dock_widget(widget, name="OpticStream")
    widget.link.options = EngineOptions(stability_seconds=0.2, poll_interval=0.1)
    assert widget.config_panel.load(tiny_run.config_path)
    widget.start(tiny_run.raw_folder)
    widget_ref, link_ref = weakref.ref(widget), weakref.ref(widget.link)
    qtbot.waitUntil(lambda: link_ref().connected and link_ref().running, timeout=5000)
    run = widget.link._run
    del widget

    viewer.close()
    QApplication.processEvents()
    assert run is not None and run.done.is_set(), "the engine stopped before napari finished closing"
    del run
    for _ in range(3):
        gc.collect()
        QApplication.processEvents()
    assert widget_ref() is None, [type(r).__name__ for r in gc.get_referrers(widget_ref())]
    assert link_ref() is None, [type(r).__name__ for r in gc.get_referrers(link_ref())]
    assert not any(name == "opticstream-state" for name in _our_threads())
    qtbot.waitUntil(lambda: not _our_threads(), timeout=5000)


def test_closing_the_widget_stops_its_link(make_napari_viewer_proxy, tiny_run: SimulatedRun, qtbot):
    viewer = make_napari_viewer_proxy()
    widget = OpticStreamWidget(viewer)
    viewer.window.add_dock_widget(widget, name="OpticStream")
    assert widget.config_panel.load(tiny_run.config_path)
    qtbot.waitUntil(lambda: widget.link.connected, timeout=5000)
    widget.close()
    assert not widget.link.connected and not widget.link.running
    qtbot.waitUntil(lambda: "opticstream-state" not in _our_threads(), timeout=5000)
