"""The two pipelines: coordinator-side steps (``psoct``, ``lsm``) and the work they submit
(``psoct_tile``, ``psoct_mosaic``, ``lsm_work``: module-level functions taking plain data)."""
