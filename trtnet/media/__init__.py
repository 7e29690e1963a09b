"""Media in and out: image/video/camera sources and writers (:mod:`.io`), the overlay
(:mod:`.overlay`), COCO result entries (:mod:`.coco`) and atomic file writes (:mod:`.files`).

The lowest room after trtnet.config/names: it imports nothing else of trtnet at run time
(type hints of runtime results only), so every room may use it.
"""
