"""The MVAE paper's MNIST model trained by MultiVae 1.0.3's models, for a speed comparison (issue 19).

Builds MultiVae's MVAE, MMVAE, MoPoE or MMVAE+ (`--model`) with the networks of
`benches/reference/mvae_mnist.py` and `mvae train --dataset mnist`: image encoder 784-512-512,
label encoder embedding(10,512)-512, latent 64, decoders 64-512-512-512-out, Swish, Adam lr 1e-3,
batch 100. The image is Bernoulli (the decoder gives logits), the label categorical; the label's
likelihood weight 50 is MultiVae's `rescale_factors` (`uses_likelihood_rescaling=True`,
`{"image": 1, "label": 50}`), which multiplies that modality's log-likelihood in every term
exactly as our `--weight label=50` does. MultiVae's categorical likelihood reads one-hot
targets, so the label modality is a one-hot row; its encoder turns it back into the digit for
the embedding (an argmax of 100 x 10 values per call).

Settings closest to `mvae train --aggregation ...` (N(0, I) prior, Gaussian posteriors, one
latent sample per term, KL weight 1 from the first step):
- mvae (ours: poe): MVAEConfig(use_subsampling=True, k=0, warmup=0): joint + image + label ELBOs.
- mmvae (ours: moe): MMVAEConfig(K=1, loss="iwae_looser", prior_and_posterior_dist="normal",
  learn_prior=False). With K = 1 the "looser" IWAE bound is MMVAE's stratified ELBO, the
  objective of `--aggregation moe --samples 1 --estimator elbo`. (MultiVae's default is K = 10,
  "dreg_looser", Laplace posteriors and a learned prior.)
- mopoe (ours: mopoe): MoPoEConfig(beta=1): one latent per point from one component (MultiVae
  deals the components out in balanced blocks of the batch), decoded into both modalities.
- mmvae-plus (ours: mmvae-plus, `--latent 64` = shared 32 + private 16 per modality):
  MMVAEPlusConfig(latent_dim=32, modalities_specific_dim=16, K=1, loss="iwae_looser",
  prior_and_posterior_dist="normal", learn_modality_prior=True, learn_shared_prior=False).

The loop is our own, not MultiVae's trainer: per step it gathers a batch by indexing the
in-memory tensors (cheaper than MultiVae's DataLoader, which collates sample by sample), wraps
it in a `MultimodalBaseDataset`, calls the model's forward (which computes MultiVae's loss),
and takes an Adam step on `output.loss`, as MultiVae's `BaseTrainer` does (MMVAE's and MMVAE+'s
loss is the batch's sum, the others' the batch mean; Adam is nearly invariant to that scale).
Torch runs on 2 threads with flush-to-zero, like `mvae_mnist.py`, and with torch.distributions'
argument checks off (needed for grey-level Bernoulli targets; it also saves their cost).

    python benches/reference/multivae_mnist.py --data ../shared/data --model mopoe --epochs 1 --limit 12000

Prints one JSON line: samples_per_second (training only: the epoch loop, not the data loading
or model construction), the epoch's mean loss per sample, and the mean loss of the first and
last 10 steps (to see that it learns).
"""
import argparse, json, os, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn.base_architectures import BaseDecoder, BaseEncoder

import multivae
from multivae.data.datasets.base import MultimodalBaseDataset
from multivae.models import MMVAE, MVAE, MoPoE, MMVAEConfig, MVAEConfig, MoPoEConfig
from multivae.models import MMVAEPlus, MMVAEPlusConfig


# The IDX reader and the activation of the independent reference beside this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mvae_mnist import Swish, idx  # noqa: E402


class Encoder(BaseEncoder):
    """first layer -> Swish -> 512-512 -> Swish -> Gaussian heads (and private heads for MMVAE+)."""

    def __init__(self, label, latent, private=0):
        BaseEncoder.__init__(self)
        self.label = label
        self.first = nn.Embedding(10, 512) if label else nn.Linear(784, 512)
        self.body = nn.Sequential(Swish(), nn.Linear(512, 512), Swish())
        self.mean, self.logvar = nn.Linear(512, latent), nn.Linear(512, latent)
        self.private = private
        if private:
            self.pmean, self.plogvar = nn.Linear(512, private), nn.Linear(512, private)

    def forward(self, x):
        h = self.body(self.first(x.argmax(-1) if self.label else x))
        out = ModelOutput(embedding=self.mean(h), log_covariance=self.logvar(h))
        if self.private:
            out["style_embedding"] = self.pmean(h)
            out["style_log_covariance"] = self.plogvar(h)
        return out


class Decoder(BaseDecoder):
    """latent -> 512-512-512 (Swish) -> out logits."""

    def __init__(self, latent, out):
        BaseDecoder.__init__(self)
        layers, sizes = [], [latent, 512, 512, 512]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), Swish()]
        self.net = nn.Sequential(*layers, nn.Linear(512, out))

    def forward(self, z):
        return ModelOutput(reconstruction=self.net(z))


def build(kind, latent=64):
    common = dict(
        n_modalities=2,
        input_dims={"image": (784,), "label": (10,)},
        uses_likelihood_rescaling=True,
        rescale_factors={"image": 1.0, "label": 50.0},
        decoders_dist={"image": "bernoulli", "label": "categorical"},
    )
    private = 0
    if kind == "mvae":
        cls, cfg = MVAE, MVAEConfig(latent_dim=latent, use_subsampling=True, k=0, warmup=0, **common)
    elif kind == "mmvae":
        cls, cfg = MMVAE, MMVAEConfig(latent_dim=latent, K=1, loss="iwae_looser",
                                      prior_and_posterior_dist="normal", learn_prior=False, **common)
    elif kind == "mopoe":
        cls, cfg = MoPoE, MoPoEConfig(latent_dim=latent, beta=1.0, **common)
    elif kind == "mmvae-plus":
        private = latent // 4  # ours: latent / (2 M) per modality, shared = latent - M * private
        shared = latent - 2 * private
        cls, cfg = MMVAEPlus, MMVAEPlusConfig(
            latent_dim=shared, modalities_specific_dim=private, K=1, loss="iwae_looser",
            prior_and_posterior_dist="normal", learn_modality_prior=True,
            learn_shared_prior=False, **common)
        latent = shared
    else:
        raise SystemExit(f"unknown --model {kind}")
    encoders = {"image": Encoder(False, latent, private), "label": Encoder(True, latent, private)}
    decoders = {"image": Decoder(latent + private, 784), "label": Decoder(latent + private, 10)}
    return cls(cfg, encoders=encoders, decoders=decoders)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="folder holding mnist/")
    p.add_argument("--model", default="mopoe", help="mvae, mmvae, mopoe or mmvae-plus")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit", type=int, default=60000, help="first N training images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    # The image's targets are grey levels in [0, 1] (as in ours and mvae_mnist.py); torch's
    # Bernoulli refuses non-binary values unless argument validation is off. Its log_prob with
    # logits is then -binary_cross_entropy_with_logits, our image likelihood.
    torch.distributions.Distribution.set_default_validate_args(False)

    x = idx(f"{a.data}/mnist/train-images-idx3-ubyte.gz")[: a.limit].reshape(-1, 784)
    y = idx(f"{a.data}/mnist/train-labels-idx1-ubyte.gz")[: a.limit].astype(np.int64)
    x = torch.from_numpy(x.astype(np.float32) / 255)
    y1 = F.one_hot(torch.from_numpy(y), 10).float()
    model = build(a.model)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n, bs = len(x), 100
    steps = (n + bs - 1) // bs
    train_seconds, losses, total = 0.0, [], 0.0
    for _ in range(a.epochs):
        t0 = time.time()
        perm = torch.randperm(n)
        for s in range(steps):
            i = perm[s * bs:(s + 1) * bs]
            batch = MultimodalBaseDataset(data={"image": x[i], "label": y1[i]})
            out = model(batch, epoch=1, batch_ratio=s / steps)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            per = (out.loss_sum if "loss_sum" in out.keys() else out.loss * len(i)).item() / len(i)
            losses.append(per)
            total += per * len(i)
        train_seconds += time.time() - t0
    print(json.dumps({
        "implementation": f"MultiVae {multivae.__version__ if hasattr(multivae, '__version__') else '1.0.3'}",
        "torch": torch.__version__,
        "model": a.model,
        "threads": torch.get_num_threads(),
        "epochs": a.epochs,
        "train_samples": n,
        "train_seconds": train_seconds,
        "samples_per_second": n * a.epochs / train_seconds,
        "loss": total / (n * a.epochs),
        "loss_first_10_steps": float(np.mean(losses[:10])),
        "loss_last_10_steps": float(np.mean(losses[-10:])),
    }))


if __name__ == "__main__":
    main()
