"""CRD (Tian, Krishnan, Isola, ICLR 2020): torchdistill's CRDLoss, two steps on one memory bank.

crd_bank: torchdistill 1.1.5 CRDLoss (mid_level.py:839-1050; the same computation as RepDistiller's
crd/memory.py + crd/criterion.py, whose ContrastMemory needs CUDA to be built) with
Normalizer4CRD(Linear) embeddings (models/wrapper.py:428-447), N = 64 examples, K = 16 negatives,
dim 8, batch 4, run for two steps with explicit contrast indices (its draw() is broken, METHODS2.md):
step 1 sets Z and updates the banks, step 2 reads the updated rows with Z frozen. loss = loss_1 +
loss_2; extras: each step's loss, Z and both banks after step 2.

crd_queue: retort's queue form (a design of ours, no published implementation), transcribed in
torch below: InfoNCE of the live pair against a FIFO queue of Q = 6 past embeddings, both
directions, three steps of batch 4 (empty queue, partly filled, full after wrapping around).
"""
import torch
import torch.nn.functional as F

from .common import relu_features, torchdistill_version

N, K, DIM, B, D_S, D_T = 64, 16, 8, 4, 6, 10
TAU, MOMENTUM = 0.07, 0.5


def _embeddings():
    from torchdistill.models.wrapper import Normalizer4CRD
    norm_s = Normalizer4CRD(torch.nn.Linear(D_S, DIM)).double()
    norm_t = Normalizer4CRD(torch.nn.Linear(D_T, DIM)).double()
    return norm_s, norm_t


def _contrast_idx(gen, ids):
    neg = torch.randint(0, N, (len(ids), K), generator=gen)
    return torch.cat([torch.tensor(ids).view(-1, 1), neg], 1)


def make_bank(gen):
    from torchdistill.losses.mid_level import CRDLoss
    norm_s, norm_t = _embeddings()
    crd = CRDLoss("s", "e", "t", input_size=DIM, output_size=N, num_negative_samples=K, num_samples=N,
                  temperature=TAU, momentum=MOMENTUM).double()
    with torch.no_grad():
        crd.params[1] = TAU  # the buffer was built in f32: set tau and momentum exactly in f64
        crd.params[4] = MOMENTUM
    mem_s, mem_t = crd.memory_v1.clone(), crd.memory_v2.clone()
    ids1, ids2 = [3, 17, 40, 62], [17, 5, 40, 33]  # two ids come back: their rows are re-read and re-updated
    idx1 = _contrast_idx(gen, ids1)
    idx2 = _contrast_idx(gen, ids2)
    idx2[0, 1:4] = torch.tensor([3, 62, 40])  # rows written at step 1 as negatives of step 2
    f_s1, f_s2 = relu_features(gen, B, D_S, grad=True), relu_features(gen, B, D_S, grad=True)
    f_t1, f_t2 = relu_features(gen, B, D_T), relu_features(gen, B, D_T)
    losses = []
    for f_s, f_t, ids, idx in ((f_s1, f_t1, ids1, idx1), (f_s2, f_t2, ids2, idx2)):
        out_s, out_t = crd.contrast_memory(norm_s(f_s), norm_t(f_t), torch.tensor(ids), idx)
        losses.append((crd.compute_contrast_loss(out_s) + crd.compute_contrast_loss(out_t)).reshape(()))
    inputs = {"f_s1": f_s1, "f_t1": f_t1, "f_s2": f_s2, "f_t2": f_t2,
              "w_s": norm_s.linear.weight, "b_s": norm_s.linear.bias,
              "w_t": norm_t.linear.weight, "b_t": norm_t.linear.bias,
              "memory_student": mem_s, "memory_teacher": mem_t,
              "ids1": torch.tensor(ids1, dtype=torch.float64), "ids2": torch.tensor(ids2, dtype=torch.float64),
              "contrast_idx1": idx1.double(), "contrast_idx2": idx2.double()}
    return dict(inputs=inputs, loss=losses[0] + losses[1],
                reference=f"torchdistill {torchdistill_version()} torchdistill.losses.mid_level.CRDLoss "
                          "(+ models.wrapper.Normalizer4CRD), two steps",
                meta=dict(n_data=N, negatives=K, dim=DIM, temperature=TAU, momentum=MOMENTUM),
                extra={"loss1": losses[0].detach(), "loss2": losses[1].detach(), "z": crd.params[2:4].clone(),
                       "memory_student": crd.memory_v1.clone(), "memory_teacher": crd.memory_v2.clone()})


def _info_nce(anchor, positive, negatives):
    logits = (anchor * positive).sum(1, keepdim=True)
    if negatives.shape[0] > 0:
        logits = torch.cat([logits, anchor @ negatives.t()], 1)
    return F.cross_entropy(logits / TAU, torch.zeros(anchor.shape[0], dtype=torch.long))


def make_queue(gen):
    Q, STEPS = 6, 3
    norm_s, norm_t = _embeddings()
    queue_s, queue_t = torch.zeros(Q, DIM, dtype=torch.float64), torch.zeros(Q, DIM, dtype=torch.float64)
    filled, head = 0, 0
    inputs, total = {}, 0
    for step in range(1, STEPS + 1):
        # step 1 meets an empty queue: its loss is 0 and its features get no gradient to compare
        f_s, f_t = relu_features(gen, B, D_S, grad=step > 1), relu_features(gen, B, D_T)
        inputs[f"f_s{step}"], inputs[f"f_t{step}"] = f_s, f_t
        e_s, e_t = norm_s(f_s), norm_t(f_t)
        total = total + _info_nce(e_s, e_t, queue_t[:filled].clone()) + _info_nce(e_t, e_s, queue_s[:filled].clone())
        for row in range(B):  # enqueue, oldest dropped
            queue_s[head], queue_t[head] = e_s[row].detach(), e_t[row].detach()
            head = (head + 1) % Q
        filled = min(Q, filled + B)
    inputs.update({"w_s": norm_s.linear.weight, "b_s": norm_s.linear.bias,
                   "w_t": norm_t.linear.weight, "b_t": norm_t.linear.bias})
    return dict(inputs=inputs, loss=total.reshape(()),
                reference="retort's CRD queue form (no published implementation): torch transcription in "
                          "bench/torch_reference/loss_refs/crd.py, embeddings torchdistill Normalizer4CRD",
                meta=dict(queue_size=Q, steps=STEPS, dim=DIM, temperature=TAU),
                extra={"queue_student": queue_s, "queue_teacher": queue_t,
                       "state": torch.tensor([filled, head], dtype=torch.float64)})


def cases():
    return {"crd_bank": make_bank, "crd_queue": make_queue}
