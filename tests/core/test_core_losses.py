"""The InfoCLIP losses: sample axes, the text term, gradient routing, degenerate inputs, ranges, checks."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from infoclip.core import (
    LPAM,
    CompressionLoss,
    DistillationLoss,
    InfoCLIPObjective,
    gram_matrix,
    joint_entropy,
    renyi_entropy,
)
from infoclip.core.sample_axis import SampleAxis
from infoclip.errors import ConfigError, InputError

DIM, PIXELS, CLASSES, BATCH = 12, 9, 5, 4


def _teacher_and_student(seed: int = 0, batch: int = BATCH, classes: int = CLASSES, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=dtype)

    # Shared components make the samples correlated, as CLIP embeddings are, so the Grams are far from I/n.
    teacher_image = 1.5 * draw(1, PIXELS, DIM) + draw(batch, PIXELS, DIM)
    teacher_text = 1.5 * draw(1, DIM) + draw(classes, DIM)
    # The student is a perturbed teacher, as a fine-tuned CLIP is.
    student_image = (teacher_image + 0.5 * draw(batch, PIXELS, DIM)).requires_grad_(True)
    student_text = (teacher_text + 0.5 * draw(classes, DIM)).requires_grad_(True)
    return student_image, student_text, teacher_image, teacher_text


def _objective(seed: int = 0, **kwargs) -> InfoCLIPObjective:
    torch.manual_seed(seed)
    return InfoCLIPObjective(LPAM(DIM), **kwargs)


def test_objective_returns_the_agreed_keys_and_the_weighted_total():
    objective = _objective(lambda_compression=0.5, lambda_distillation=2.0)
    out = objective(*_teacher_and_student())
    assert set(out) == {"compression", "distillation", "total", "alignment_teacher", "alignment_student"}
    torch.testing.assert_close(out["total"], 0.5 * out["compression"] + 2.0 * out["distillation"])
    assert out["alignment_teacher"].shape == out["alignment_student"].shape == (BATCH, PIXELS, CLASSES)
    assert objective.lpam is objective.get_submodule("lpam")
    assert {name for name, _ in objective.named_parameters()} == {f"lpam.{n}" for n, _ in LPAM(DIM).named_parameters()}


@pytest.mark.parametrize("gram_axis", ["batch", "pairs"])
def test_objective_equals_the_separate_loss_modules(gram_axis):
    s_img, s_txt, t_img, t_txt = _teacher_and_student()
    objective = _objective(gram_axis=gram_axis)
    out = objective(s_img, s_txt, t_img, t_txt)
    r_t, r_s = objective.lpam(t_img, t_txt), objective.lpam(s_img, s_txt)
    torch.testing.assert_close(out["compression"], CompressionLoss(gram_axis=gram_axis)(t_img, t_txt, r_t))
    torch.testing.assert_close(out["distillation"], DistillationLoss(gram_axis=gram_axis)(r_t, r_s))


@pytest.mark.parametrize("gram_axis", ["batch", "pairs"])
def test_losses_follow_the_entropy_formulas(gram_axis):
    s_img, s_txt, t_img, t_txt = _teacher_and_student(dtype=torch.float64)
    lpam = LPAM(DIM).double()
    r_t, r_s = lpam(t_img, t_txt), lpam(s_img, s_txt)
    grams = SampleAxis(gram_axis).grams({"R^T": r_t, "R^S": r_s}, t_img, t_txt)
    a_t, a_s = grams.alignments.values()
    expected_c = renyi_entropy(a_t) - joint_entropy(grams.image, grams.text, a_t)
    expected_d = -(renyi_entropy(a_t) + renyi_entropy(a_s) - joint_entropy(a_t, a_s))
    torch.testing.assert_close(CompressionLoss(gram_axis=gram_axis)(t_img, t_txt, r_t), expected_c)
    torch.testing.assert_close(DistillationLoss(gram_axis=gram_axis)(r_t, r_s), expected_d)


def test_pairs_axis_grams_have_the_kronecker_structure():
    _, _, t_img, t_txt = _teacher_and_student(dtype=torch.float64)
    r = torch.randn(BATCH, PIXELS, CLASSES, dtype=torch.float64)
    grams = SampleAxis("pairs").grams({"R": r}, t_img, t_txt)
    n = BATCH * CLASSES
    # Pair index b*T + t: image b's features, class t's text, the map R[b, :, t].
    torch.testing.assert_close(grams.image, gram_matrix(t_img.repeat_interleave(CLASSES, dim=0)))
    torch.testing.assert_close(grams.text, gram_matrix(t_txt.repeat(BATCH, 1)))
    torch.testing.assert_close(grams.alignments["R"], gram_matrix(torch.stack([r[i // CLASSES, :, i % CLASSES] for i in range(n)])))
    assert grams.num_samples == n
    per_image_text = t_txt.expand(BATCH, CLASSES, DIM)
    torch.testing.assert_close(SampleAxis("pairs").grams({"R": r}, t_img, per_image_text).text, grams.text)


def test_batch_axis_with_shared_text_drops_the_text_term_and_pairs_axis_does_not():
    s_img, s_txt, t_img, t_txt = _teacher_and_student()
    r_t = LPAM(DIM)(t_img, t_txt)
    batch = SampleAxis("batch").grams({"R": r_t}, t_img)
    without_text = renyi_entropy(batch.alignments["R"]) - joint_entropy(batch.image, batch.alignments["R"])
    for text in (t_txt, t_txt.expand(BATCH, CLASSES, DIM)):
        torch.testing.assert_close(CompressionLoss(gram_axis="batch")(t_img, text, r_t), without_text, atol=1e-5, rtol=0)
    # Per-image text that differs between images does enter L_c on the batch axis.
    differing = t_txt + 0.8 * torch.randn(BATCH, CLASSES, DIM)
    assert abs(CompressionLoss(gram_axis="batch")(t_img, differing, r_t) - without_text) > 1e-2
    pairs = SampleAxis("pairs").grams({"R": r_t}, t_img)
    pairs_without_text = renyi_entropy(pairs.alignments["R"]) - joint_entropy(pairs.image, pairs.alignments["R"])
    assert abs(CompressionLoss(gram_axis="pairs")(t_img, t_txt, r_t) - pairs_without_text) > 1e-2


@pytest.mark.parametrize("gram_axis", ["batch", "pairs"])
@pytest.mark.parametrize("seed", range(3))
def test_loss_values_lie_in_their_ranges(gram_axis, seed):
    out = _objective(seed, gram_axis=gram_axis)(*_teacher_and_student(seed))
    n = BATCH * (CLASSES if gram_axis == "pairs" else 1)
    assert -math.log2(n) - 1e-5 <= out["compression"].item() <= 1e-5
    assert -math.log2(n) - 1e-5 <= out["distillation"].item() <= 0.5


def _grads(tensors):
    return [None if t.grad is None else t.grad.clone() for t in tensors]


@pytest.mark.parametrize("gram_axis", ["batch", "pairs"])
def test_gradient_routing(gram_axis):
    s_img, s_txt, t_img, t_txt = _teacher_and_student()
    # Teacher features that (wrongly) require grad must still receive none.
    t_img.requires_grad_(True)
    t_txt.requires_grad_(True)
    objective = _objective(gram_axis=gram_axis)
    params = list(objective.parameters())

    out = objective(s_img, s_txt, t_img, t_txt)
    out["compression"].backward(retain_graph=True)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params), "L_c must reach LPAM"
    assert s_img.grad is None and s_txt.grad is None, "L_c must never reach the student"
    objective.zero_grad(set_to_none=True)

    out["distillation"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params), "L_d must reach LPAM"
    assert s_img.grad.abs().sum() > 0 and s_txt.grad.abs().sum() > 0, "L_d must reach the student"
    assert t_img.grad is None and t_txt.grad is None, "the teacher must receive no gradient"


def test_detaching_the_teacher_in_distillation_keeps_only_the_student_path():
    s_img, s_txt, t_img, t_txt = _teacher_and_student()
    attached, detached = _objective(), _objective(detach_teacher_in_distillation=True)
    out_a, out_d = attached(s_img, s_txt, t_img, t_txt), detached(s_img, s_txt, t_img, t_txt)
    torch.testing.assert_close(out_a["distillation"], out_d["distillation"])
    torch.testing.assert_close(out_a["compression"], out_d["compression"])

    # With detach, L_d's LPAM gradient is the gradient through R^S alone.
    out_d["distillation"].backward()
    r_t = detached.lpam(t_img, t_txt).detach()
    reference = _objective()
    DistillationLoss()(r_t, reference.lpam(s_img, s_txt)).backward()
    for p, q in zip(detached.parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    attached.zero_grad()
    out_a["distillation"].backward()
    assert any(not torch.allclose(p.grad, q.grad) for p, q in zip(attached.parameters(), reference.parameters()))


def test_a_given_student_alignment_is_reused():
    s_img, s_txt, t_img, t_txt = _teacher_and_student()
    objective = _objective()
    r_s = objective.lpam(s_img, s_txt)
    out = objective(s_img, s_txt, t_img, t_txt, student_alignment=r_s)
    assert out["alignment_student"] is r_s
    torch.testing.assert_close(out["total"], objective(s_img, s_txt, t_img, t_txt)["total"])
    with pytest.raises(InputError, match="student_alignment has shape"):
        objective(s_img, s_txt, t_img, t_txt, student_alignment=r_s[:, :, :-1])


@pytest.mark.parametrize("gram_axis", ["batch", "pairs"])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.5, 2.0])
def test_every_alpha_gives_finite_values_and_gradients(gram_axis, alpha):
    s_img, s_txt, t_img, t_txt = _teacher_and_student()
    objective = _objective(alpha=alpha, gram_axis=gram_axis)
    objective(s_img, s_txt, t_img, t_txt)["total"].backward()
    assert torch.isfinite(s_img.grad).all() and all(torch.isfinite(p.grad).all() for p in objective.parameters())


@pytest.mark.parametrize("gram_axis", ["batch", "pairs"])
def test_frobenius_and_eigenvalue_routes_give_the_same_objective(gram_axis):
    results = []
    for method in ("frobenius", "eigvalsh"):
        s_img, s_txt, t_img, t_txt = _teacher_and_student(dtype=torch.float64)
        objective = _objective(gram_axis=gram_axis, method=method).double()
        out = objective(s_img, s_txt, t_img, t_txt)
        out["total"].backward()
        results.append((out["compression"], out["distillation"], s_img.grad, objective.lpam.proj_text.weight.grad))
    for fro, eig in zip(*results):
        torch.testing.assert_close(fro, eig)


@pytest.mark.parametrize("gram_axis", ["batch", "pairs"])
def test_permuting_the_batch_changes_nothing(gram_axis):
    s_img, s_txt, t_img, t_txt = _teacher_and_student(dtype=torch.float64)
    objective = _objective(gram_axis=gram_axis).double()
    perm = torch.tensor([2, 0, 3, 1])
    out = objective(s_img, s_txt, t_img, t_txt)
    permuted = objective(s_img[perm], s_txt, t_img[perm], t_txt)
    for key in ("compression", "distillation"):
        torch.testing.assert_close(out[key], permuted[key])
    # Permuting the classes consistently changes nothing either.
    cls = torch.tensor([4, 2, 0, 1, 3])
    permuted = objective(s_img, s_txt[cls], t_img, t_txt[cls])
    for key in ("compression", "distillation"):
        torch.testing.assert_close(out[key], permuted[key])


@pytest.mark.parametrize("gram_axis", ["batch", "pairs"])
def test_identical_images_give_zero_losses_on_the_batch_axis_and_finite_ones_on_pairs(gram_axis):
    s_img, s_txt, t_img, t_txt = _teacher_and_student()
    t_img = t_img[:1].expand(BATCH, PIXELS, DIM)
    s_img = s_img.detach()[:1].expand(BATCH, PIXELS, DIM).clone().requires_grad_(True)
    objective = _objective(gram_axis=gram_axis)
    out = objective(s_img, s_txt, t_img, t_txt)
    out["total"].backward()
    assert torch.isfinite(s_img.grad).all()
    if gram_axis == "batch":
        # Every Gram is 11^T/n: all entropies are 0, and so are both losses.
        assert out["compression"].item() == pytest.approx(0.0, abs=1e-5)
        assert out["distillation"].item() == pytest.approx(0.0, abs=1e-5)
    else:
        assert torch.isfinite(out["total"])


@pytest.mark.parametrize("gram_axis", ["batch", "pairs"])
def test_a_zero_alignment_map_gives_finite_values_and_gradients(gram_axis):
    s_img, s_txt, t_img, t_txt = _teacher_and_student()
    objective = _objective(gram_axis=gram_axis)
    r_s = objective.lpam(s_img, s_txt)
    r_s = torch.cat([r_s[:1] * 0.0, r_s[1:]])  # image 0's map is exactly zero
    out = objective(s_img, s_txt, t_img, t_txt, student_alignment=r_s)
    out["total"].backward()
    assert torch.isfinite(out["total"]) and torch.isfinite(s_img.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in objective.parameters())


def test_a_single_image_gives_zero_losses_with_a_warning():
    s_img, s_txt, t_img, t_txt = _teacher_and_student(batch=1)
    objective = _objective()
    with pytest.warns(RuntimeWarning, match="single sample"):
        out = objective(s_img, s_txt, t_img, t_txt)
    assert out["compression"].item() == 0.0 and out["distillation"].item() == 0.0
    out["total"].backward()
    assert torch.count_nonzero(s_img.grad) == 0
    # On the pairs axis one image with several classes is still n = T samples.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = _objective(gram_axis="pairs")(s_img, s_txt, t_img, t_txt)
    assert out["distillation"].item() < 0


@pytest.mark.parametrize("gram_axis", ["batch", "pairs"])
def test_a_single_class_gives_finite_losses(gram_axis):
    s_img, s_txt, t_img, t_txt = _teacher_and_student(classes=1)
    objective = _objective(gram_axis=gram_axis)
    out = objective(s_img, s_txt, t_img, t_txt)
    out["total"].backward()
    assert torch.isfinite(out["total"]) and torch.isfinite(s_img.grad).all()


def test_dtypes_float64_stays_float64_and_autocast_computes_entropies_in_float32():
    s_img, s_txt, t_img, t_txt = _teacher_and_student(dtype=torch.float64)
    assert _objective().double()(s_img, s_txt, t_img, t_txt)["total"].dtype == torch.float64
    s_img, s_txt, t_img, t_txt = _teacher_and_student()
    objective = _objective()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = objective(s_img, s_txt, t_img, t_txt)
    assert out["alignment_student"].dtype == torch.bfloat16
    assert out["total"].dtype == torch.float32 and torch.isfinite(out["total"])
    reference = objective(s_img, s_txt, t_img, t_txt)["total"]
    assert out["total"].item() == pytest.approx(reference.item(), abs=0.05)


def test_loss_inputs_are_checked():
    s_img, s_txt, t_img, t_txt = _teacher_and_student()
    r = torch.randn(BATCH, PIXELS, CLASSES)
    with pytest.raises(InputError, match="do not match the alignment map"):
        CompressionLoss()(t_img[:2], t_txt, r)
    with pytest.raises(InputError, match=r"expected \(T=5, D\)"):
        CompressionLoss()(t_img, t_txt[:3], r)
    with pytest.raises(InputError, match=r"expected \(T=5, D\) or \(B=4"):
        CompressionLoss()(t_img, torch.randn(3, CLASSES, DIM), r)
    with pytest.raises(InputError, match="alignment maps must be of the same images and classes"):
        DistillationLoss()(r, r[:, :, :2])
    with pytest.raises(InputError, match=r"\(B, H\*W, T\)"):
        DistillationLoss()(r[0], r[0])
    with pytest.raises(InputError, match="torch.Tensor"):
        _objective()(s_img, s_txt, t_img.numpy(), t_txt)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gram_axis": "pixels"}, "gram_axis"),
        ({"kernel": "gaussian"}, "explicit bandwidth"),
        ({"alpha": 0}, "alpha"),
        ({"alpha": 1.5, "method": "frobenius"}, "alpha = 2"),
        ({"lambda_compression": float("nan")}, "lambda_compression"),
        ({"lambda_distillation": "1"}, "lambda_distillation"),
    ],
)
def test_objective_options_are_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        InfoCLIPObjective(LPAM(DIM), **kwargs)


def test_gaussian_kernel_option_runs_forward_and_backward():
    objective = _objective(kernel="gaussian", sigma=20.0)
    out = objective(*_teacher_and_student())
    assert torch.isfinite(out["total"])
    out["total"].backward()
    grads = [p.grad for p in objective.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
