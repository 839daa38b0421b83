"""PCA-PQ: the compressed index of large maps (the ``auto`` choice above 50k places).

Measured on the default encoder's 3328-d descriptors at 1M places (docs/scale.md), where
IVF-PQ reached recall@5 0.85 in 22 ms (neighbours spread over many lists, so probing loses them)
and an HNSW graph over PQ or SQ8 codes 0.64-0.72 (its graph navigates badly at this intrinsic
dimension), a *full* scan of small codes is both fast and accurate:

1. a linear map to ``pca_dim`` (256) dims: the top principal directions of the map's rows,
   followed by a random rotation so each sub-quantiser gets a similar share of the variance;
2. 4-bit product quantisation with 2 dims per code, scanned with faiss's SIMD fast-scan
   (64 B per place; the whole 1M-place scan takes 3-6 ms, memory-bound);
3. the scan's best ``K_FACTOR`` x k re-ranked with 8-bit scalar-quantised projections (256 B per
   place), and the caller re-scores the survivors exactly with the stored float rows.

The projection is fitted with numpy/scipy (covariance + the top eigenvectors, ~2.5 s on 20k
rows of 3328-d; faiss's own PCAMatrix takes ~35 s) and stored as a faiss ``LinearTransform``, so
the whole index is one faiss file. Distances are squared L2 between projections (the PCA is
centred, so inner products would be biased by each place's projection onto the mean); for unit
vectors that ranks like cosine.
"""

from __future__ import annotations

import faiss
import numpy as np
import scipy.linalg

K_FACTOR = 10  # fast-scan candidates per result re-ranked with the SQ8 codes


def new_pca_pq(dim: int, pca_dim: int) -> faiss.IndexPreTransform:
    """An untrained PCA-PQ index for ``dim``-d rows (train with :func:`train_pca_pq`)."""
    lt = faiss.LinearTransform(dim, pca_dim, True)
    base = faiss.IndexPQFastScan(pca_dim, pca_dim // 2, 4, faiss.METRIC_L2)
    refine = faiss.IndexScalarQuantizer(pca_dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2)
    inner = faiss.IndexRefine(base, refine)
    inner.k_factor = K_FACTOR
    return faiss.IndexPreTransform(lt, inner)


def set_search_defaults(index: faiss.Index) -> None:
    """Search settings a loaded index does not keep (k_factor is not serialised as set)."""
    faiss.downcast_index(faiss.downcast_index(index).index).k_factor = K_FACTOR


def fit_projection(sample: np.ndarray, pca_dim: int, seed: int = 0):
    """(A, b): y = A x + b maps rows to ``pca_dim`` rotated principal coordinates."""
    x = np.asarray(sample, dtype=np.float32)
    mean = x.mean(axis=0)
    z = x - mean
    cov = (z.T @ z) / max(len(x) - 1, 1)
    d = cov.shape[0]
    _, vecs = scipy.linalg.eigh(cov, subset_by_index=[d - pca_dim, d - 1], driver="evr")
    rot, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((pca_dim, pca_dim)))
    a = (rot @ vecs[:, ::-1].T).astype(np.float32)  # (pca_dim, dim)
    return a, (-a @ mean).astype(np.float32)


def train_pca_pq(index: faiss.IndexPreTransform, sample: np.ndarray) -> None:
    """Fit the projection on ``sample`` (rows, float32) and train the codes on its image."""
    index = faiss.downcast_index(index)
    lt = faiss.downcast_VectorTransform(index.chain.at(0))
    a, b = fit_projection(sample, lt.d_out)
    faiss.copy_array_to_vector(a.ravel(), lt.A)
    faiss.copy_array_to_vector(b, lt.b)
    lt.is_trained = True
    index.train(np.ascontiguousarray(sample, dtype=np.float32))  # the chain is trained: codes only
    set_search_defaults(index)


def check_pca_pq(index: faiss.Index, dim: int, pca_dim: int) -> str:
    """Why ``index`` (read from a file) is not a PCA-PQ index for this map; '' if it is."""
    if not isinstance(index, faiss.IndexPreTransform) or index.chain.size() != 1:
        return f"expected a PCA-PQ index (one transform + refined PQ), got {type(index).__name__}"
    lt = faiss.downcast_VectorTransform(index.chain.at(0))
    inner = faiss.downcast_index(index.index)
    if type(lt) is not faiss.LinearTransform or lt.d_in != dim or lt.d_out != pca_dim:
        return f"the index's projection is not {dim} -> {pca_dim} (manifest pca_dim {pca_dim})"
    if not isinstance(inner, faiss.IndexRefine):
        return f"the projected index is a {type(inner).__name__}, not a refined PQ"
    base = faiss.downcast_index(inner.base_index)
    refine = faiss.downcast_index(inner.refine_index)
    if not isinstance(base, faiss.IndexPQFastScan) or not isinstance(
        refine, faiss.IndexScalarQuantizer
    ):
        return "the projected index is not fast-scan PQ refined by scalar quantisation"
    if base.ntotal != refine.ntotal or base.metric_type != faiss.METRIC_L2:
        return "the PCA-PQ index's code tables disagree (corrupt file)"
    return ""
