"""The mediator between the engine, the state database and the napari viewer.

The dock widget never runs the engine, queries the database or touches a layer itself; it calls
:class:`ViewerLink`, which

- runs the engine in a napari worker thread (:mod:`.engine_run`), with a bar in the activity
  dock whose cancel (like the widget's Stop) sets the engine's stop event;
- follows the project's change feed on a thread of its own (:mod:`.state_follower`) and hands
  per-slice summaries to the GUI thread at most ten times a second;
- turns engine messages (a region written, a mosaic finalised, its volumes stitched) into
  multiscale layers (2D en-face, 3D volumes) described off the GUI thread (:mod:`.layer_specs`)
  and applied on it (:mod:`.mediator`), refreshed at most ten times a second.

Only :mod:`.mediator` creates or changes layers. The widgets import what they need from here.
"""

from opticstream_napari.identity import Identity
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.summary import SliceSummary
from opticstream_napari.state.urls import redact_url
from opticstream_napari.viewer_link.engine_run import EngineOptions
from opticstream_napari.viewer_link.layer_specs import (
    DISPLAY,
    LayerSpec,
    ScanConfigModel,
    SliceLayers,
    slice_layer_specs,
)
from opticstream_napari.viewer_link.mediator import ViewerLink
from opticstream_napari.viewer_link.state_follower import Failure, StateUpdate, expected_counts, slice_failures

__all__ = [
    "DISPLAY",
    "EngineOptions",
    "Failure",
    "Identity",
    "LayerSpec",
    "Lifecycle",
    "ScanConfigModel",
    "SliceLayers",
    "SliceSummary",
    "StateUpdate",
    "ViewerLink",
    "expected_counts",
    "redact_url",
    "slice_failures",
    "slice_layer_specs",
]
