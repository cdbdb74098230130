import torch

from recsae.metrics.agreement import topk_lists
from recsae.metrics.topk import topk_by_id


def _brute_force(row: list[float], k: int) -> list[int]:
    return sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]


def test_topk_by_id_breaks_ties_by_lower_index():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (20, 50), generator=gen).float()  # many ties
    values, indices = topk_by_id(scores, 10, dim=1)
    for row, vals, idx in zip(scores.tolist(), values, indices, strict=True):
        assert idx.tolist() == _brute_force(row, 10)
        assert vals.tolist() == [row[i] for i in idx.tolist()]


def test_topk_by_id_along_dim_zero_matches_the_transpose():
    gen = torch.Generator().manual_seed(1)
    acts = torch.randint(0, 3, (40, 6), generator=gen).double()
    values, indices = topk_by_id(acts, 5, dim=0)
    for col in range(acts.shape[1]):
        assert indices[:, col].tolist() == _brute_force(acts[:, col].tolist(), 5)
        assert values[:, col].tolist() == acts[indices[:, col], col].tolist()


def test_topk_lists_ties_go_to_the_lower_item_id():
    scores = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.5, 2.0]])
    exclude = torch.tensor([[False, False, True, False, False, False]])
    assert topk_lists(scores, 3, exclude).tolist() == [[1, 3, 5]]
