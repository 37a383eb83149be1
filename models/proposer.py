"""A weight-free object proposer: Felzenszwalb graph segmentation + hierarchical grouping -> boxes.

Used when no detector weights are reachable (the offline default). The image is segmented with
scikit-image's ``felzenszwalb``; adjacent segments are then merged greedily by colour, size and
fill similarity, as in selective search (Uijlings et al., 2013), and every segment and every merge
becomes a candidate box. Candidates are scored by how much their colour differs from their
neighbours' (a pasted or foreground object stands out from what surrounds it) times how well they
fill their box, then de-duplicated with NMS and capped. Measured on a 437x512 photo: OpenCV's
selective search took 5 s for ~6,900 proposals; this takes ~0.1-0.3 s for a few hundred candidates.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

PROPOSER_NAME = "felzenszwalb"
_BINS = 16


@dataclass(frozen=True)
class ProposerConfig:
    """Options of the weight-free proposer.

    Args:
        scale: Felzenszwalb ``scale``; larger gives fewer, bigger segments.
        sigma: Gaussian pre-smoothing of the segmentation.
        min_size: smallest segment, in pixels of the working image.
        work_side: the image is downscaled so that its longest side is at most this (speed).
        grouping: merge adjacent segments hierarchically (selective-search style) for more candidates.
        nms_iou: candidates overlapping a better one by more than this IoU are dropped.
        max_proposals: candidates kept per image, best first.
        min_score: candidates scoring below this are dropped.
    """

    scale: float = 500.0
    sigma: float = 0.8
    min_size: int = 50
    work_side: int = 384
    grouping: bool = True
    nms_iou: float = 0.6
    max_proposals: int = 100
    min_score: float = 0.0


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of ``boxes`` (N x 4, xyxy) kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        ious = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[ious <= iou]
    return np.asarray(keep, dtype=np.int64)


class _Regions:
    """Per-region statistics (box, size, colour histogram, neighbours), grown by merging."""

    def __init__(self, labels: np.ndarray, image: np.ndarray) -> None:
        from scipy import ndimage

        n = int(labels.max()) + 1
        flat = labels.ravel()
        self.size = np.bincount(flat, minlength=n).astype(np.float64)
        self.box = np.zeros((n, 4))
        for i, sl in enumerate(ndimage.find_objects(labels + 1)):
            if sl is not None:
                self.box[i] = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
        q = (image.reshape(-1, 3).astype(np.int64) * _BINS) // 256
        hist = np.stack([np.bincount(flat * _BINS + q[:, c], minlength=n * _BINS).reshape(n, _BINS)
                         for c in range(3)], 1).reshape(n, 3 * _BINS).astype(np.float64)
        self.hist = hist / np.maximum(self.size[:, None] * 3, 1)
        pairs = np.concatenate([
            np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),
            np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], 1)])
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        pairs = np.unique(np.sort(pairs, 1), axis=0)
        self.neighbours: list[set[int]] = [set() for _ in range(n)]
        for a, b in pairs.tolist():
            self.neighbours[a].add(b)
            self.neighbours[b].add(a)
        self.image_area = float(labels.size)
        self.n = n

    def similarity(self, a: int, b: int) -> float:
        colour = np.minimum(self.hist[a], self.hist[b]).sum()
        size = 1.0 - (self.size[a] + self.size[b]) / self.image_area
        box = np.concatenate([np.minimum(self.box[a, :2], self.box[b, :2]),
                              np.maximum(self.box[a, 2:], self.box[b, 2:])])
        fill = 1.0 - ((box[2] - box[0]) * (box[3] - box[1]) - self.size[a] - self.size[b]) / self.image_area
        return float(colour + size + fill)

    def merge(self, a: int, b: int) -> int:
        new = self.n
        self.n += 1
        s = self.size[a] + self.size[b]
        self.size = np.append(self.size, s)
        self.hist = np.vstack([self.hist, (self.hist[a] * self.size[a] + self.hist[b] * self.size[b]) / s])
        box = np.concatenate([np.minimum(self.box[a, :2], self.box[b, :2]),
                              np.maximum(self.box[a, 2:], self.box[b, 2:])])
        self.box = np.vstack([self.box, box])
        nb = (self.neighbours[a] | self.neighbours[b]) - {a, b}
        self.neighbours.append(nb)
        for k in nb:
            self.neighbours[k] -= {a, b}
            self.neighbours[k].add(new)
        return new

    def contrast(self, r: int) -> float:
        """1 - colour-histogram intersection with the size-weighted union of the neighbours."""
        nb = list(self.neighbours[r])
        if not nb:
            return 0.0
        w = self.size[nb][:, None]
        around = (self.hist[nb] * w).sum(0) / w.sum()
        return float(1.0 - np.minimum(self.hist[r], around).sum())


def _group(regions: _Regions) -> list[tuple[int, float]]:
    """Merge greedily until one region is left; return (region, contrast) for every region made."""
    out = [(r, regions.contrast(r)) for r in range(regions.n)]
    alive = set(range(regions.n))
    heap = [(-regions.similarity(a, b), a, b) for a in range(regions.n) for b in regions.neighbours[a] if a < b]
    heapq.heapify(heap)
    while heap:
        _, a, b = heapq.heappop(heap)
        if a not in alive or b not in alive:
            continue
        new = regions.merge(a, b)
        alive -= {a, b}
        alive.add(new)
        for k in regions.neighbours[new]:
            heapq.heappush(heap, (-regions.similarity(new, k), k, new))
        out.append((new, regions.contrast(new)))
    return out


class FelzenszwalbProposer:
    """Boxes from graph-based segmentation; no weights, deterministic.

    Args:
        config: the proposer's options.
    """

    def __init__(self, config: ProposerConfig | None = None) -> None:
        self.config = config or ProposerConfig()

    @property
    def model_id(self) -> str:
        import skimage

        c = self.config
        return f"{PROPOSER_NAME}(scale={c.scale:g},sigma={c.sigma:g},min_size={c.min_size}) skimage-{skimage.__version__}"

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Propose boxes for one RGB uint8 image (H x W x 3).

        Returns:
            (boxes, scores): float32 N x 4 boxes (x0, y0, x1, y1) in pixels of ``image``, best
            first, and their scores in [0, 1].
        """
        from PIL import Image
        from skimage.segmentation import felzenszwalb

        c = self.config
        h, w = image.shape[:2]
        f = min(1.0, c.work_side / max(h, w))
        small = image
        if f < 1.0:
            size = (max(1, round(w * f)), max(1, round(h * f)))
            small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
        labels = felzenszwalb(small, scale=c.scale, sigma=c.sigma, min_size=c.min_size)
        regions = _Regions(labels, small)
        made = _group(regions) if c.grouping else [(r, regions.contrast(r)) for r in range(regions.n)]
        idx = np.array([r for r, _ in made], dtype=np.int64)
        contrast = np.array([s for _, s in made])
        boxes = regions.box[idx]
        fill = regions.size[idx] / np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1)
        scores = contrast * np.sqrt(fill)
        # the whole image is not a proposal; neither is anything that scores below the floor
        whole = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) >= 0.98 * labels.size
        ok = ~whole & (scores >= c.min_score)
        boxes, scores = boxes[ok], scores[ok]
        keep = nms(boxes, scores, c.nms_iou)[: c.max_proposals]
        boxes = boxes[keep] / f
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        return boxes.astype(np.float32), scores[keep].astype(np.float32)
