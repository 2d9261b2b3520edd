"""num_masks is the mean over DDP processes of their target counts (two gloo processes on CPU)."""

import os
import socket
import subprocess
import sys
import textwrap

WORKER = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    from infoclip.mask_classification import MaskTargets, SetCriterion, SetCriterionConfig
    rank = int(sys.argv[1])
    dist.init_process_group("gloo", rank=rank, world_size=2)
    counts = [3, 1][rank]
    targets = [MaskTargets(torch.zeros(counts, dtype=torch.int64), torch.ones(counts, 4, 4, dtype=torch.bool))]
    print("NUM_MASKS", SetCriterion(SetCriterionConfig(num_classes=2)).num_masks(targets, torch.device("cpu")))
    dist.destroy_process_group()
    """
)


def test_num_masks_is_averaged_over_processes():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(rank)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)  # fmt: skip
        for rank in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-2000:]
        assert "NUM_MASKS 2.0" in out, out[-2000:]
