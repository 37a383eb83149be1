"""The download stage (img2dataset) and the guards it runs every URL and body through.

``stage.py`` is the stage; ``url_guard.py`` checks URLs and addresses (SSRF), ``http_guard.py`` is
the guarded HTTP opener (deadline, size cap, per-hop address checks), ``image_check.py`` rejects
non-images and decompression bombs before decoding.
"""

from regionset.stages.download.stage import DownloadConfig, DownloadStage

__all__ = ["DownloadConfig", "DownloadStage"]
