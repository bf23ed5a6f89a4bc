"""Operating conditions from the settings: k-means (the preprocessing's centroids) and how
many well-separated conditions the settings of a data set form (its spec must say as many)."""

import numpy as np

MIN_SCALE = 1e-4  # a setting constant in the data is left as is, not blown up


def kmeans(points: np.ndarray, k: int, iterations: int = 50) -> np.ndarray:
    """Deterministic k-means (farthest-point start, Lloyd updates) -> (k, D) centroids."""
    centroids = [points.mean(axis=0)] if k == 1 else [points[0]]
    while len(centroids) < k:
        dist = np.min([((points - c) ** 2).sum(axis=1) for c in centroids], axis=0)
        centroids.append(points[int(np.argmax(dist))])
    c = np.array(centroids)
    for _ in range(iterations):
        assign = np.argmin(((points[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        c = np.array([points[assign == j].mean(axis=0) for j in range(k)])
    return c


def count_conditions(settings: np.ndarray, most: int = 12) -> int:
    """How many operating conditions the settings (N, S) form: the largest k for which k-means
    gives k groups with clear gaps between them (every row nearer its centroid than a quarter
    of the distance between the two closest centroids: a setting that drifts evenly is one
    condition, not several), else 1. C-MAPSS: 1, 6, 1, 6 for FD001-FD004, 6 for the four together."""
    if settings.shape[1] == 0 or len(settings) < 2:
        return 1
    points = settings / np.maximum(settings.std(axis=0), MIN_SCALE)
    points = points[:: max(1, len(points) // 4_000)]  # a sample bounds the time; conditions recur
    found = 1
    for k in range(2, min(most, len(points)) + 1):
        centroids = kmeans(points, k)
        distance = np.sqrt(((points[:, None, :] - centroids[None]) ** 2).sum(-1))  # (N, k)
        radius = distance.min(axis=1).max()
        between = np.sqrt(((centroids[:, None] - centroids[None]) ** 2).sum(-1))[np.triu_indices(k, 1)].min()
        if radius < between / 4:
            found = k
    return found
