"""An independent PyTorch implementation of the MVAE paper's MNIST setup, for comparison.

Same model and recipe as `examples/mnist.rs`: image encoder 784-512-512, label encoder
embedding(10,512)-512, latent 64, decoders 64-512-512-512-out, Swish, Adam lr 1e-3, batch 100,
lambda_image 1, lambda_label 50, KL weight annealed linearly per step over --anneal-epochs epochs;
joint + image + label ELBOs per step, encoders run once. Prints one JSON line with the same keys.

    python benches/reference/mvae_mnist.py --data ../shared/data --epochs 1 --anneal-epochs 1 --seed 0

`--device cuda` runs it on a GPU (data and model on the device; the loss is read back every
step, as in `examples/mnist.rs`, so the timing includes one synchronisation per step).
"""
import argparse, gzip, json, struct, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def idx(path):
    with gzip.open(path) as f:
        d = f.read()
    rank = d[3]
    dims = struct.unpack(">" + "I" * rank, d[4:4 + 4 * rank])
    return np.frombuffer(d, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(dir, prefix):
    x = idx(f"{dir}/mnist/{prefix}-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255
    y = idx(f"{dir}/mnist/{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


def mlp(sizes):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), Swish()]
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    def __init__(self, first, latent):
        super().__init__()
        self.body = nn.Sequential(first, Swish(), nn.Linear(512, 512), Swish())
        self.mean, self.logvar = nn.Linear(512, latent), nn.Linear(512, latent)

    def forward(self, x):
        h = self.body(x)
        return self.mean(h), self.logvar(h)


class Decoder(nn.Module):
    def __init__(self, latent, out):
        super().__init__()
        self.net = nn.Sequential(mlp([latent, 512, 512, 512]), nn.Linear(512, out))

    def forward(self, z):
        return self.net(z)


def poe(experts):
    prec = 1.0 + sum(torch.exp(-lv) for _, lv in experts)
    mean = sum(m * torch.exp(-lv) for m, lv in experts) / prec
    return mean, -torch.log(prec)


def kl(mean, logvar):
    return 0.5 * (logvar.exp() + mean ** 2 - 1 - logvar).sum(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--anneal-epochs", type=float, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    a = p.parse_args()
    dev = torch.device(a.device)
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    xtr, ytr, xte, yte = (t.to(dev) for t in (xtr, ytr, xte, yte))
    L = 64
    ie, le = Encoder(nn.Linear(784, 512), L), Encoder(nn.Embedding(10, 512), L)
    idec, ldec = Decoder(L, 784), Decoder(L, 10)
    for m in (ie, le, idec, ldec):
        m.to(dev)
    params = [q for m in (ie, le, idec, ldec) for q in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    n, bs = len(ytr), 100
    steps_per_epoch = (n + bs - 1) // bs
    anneal = a.anneal_epochs * steps_per_epoch
    step, train_seconds = 0, 0.0
    import sys
    for _ in range(a.epochs):
        t0 = time.time()
        perm = torch.randperm(n).to(dev)
        epoch_loss = 0.0
        for s in range(steps_per_epoch):
            idx_ = perm[s * bs:(s + 1) * bs]
            x, y = xtr[idx_], ytr[idx_]
            beta = min(1.0, (step + 1) / anneal) if anneal > 0 else 1.0
            ei, el = ie(x), le(y)
            loss = 0
            for experts, score_img, score_lab in (([ei, el], 1, 1), ([ei], 1, 0), ([el], 0, 1)):
                mean, logvar = poe(experts)
                z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
                per = beta * kl(mean, logvar)
                if score_img:
                    per = per + F.binary_cross_entropy_with_logits(idec(z), x, reduction="none").sum(1)
                if score_lab:
                    per = per + 50.0 * F.cross_entropy(ldec(z), y, reduction="none")
                loss = loss + per.mean()
            epoch_loss += loss.item() * len(idx_)
            if step in (0, 9, 99, 299, 599):
                print(f'step {step + 1} loss {loss.item():.2f}', file=sys.stderr)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        if dev.type == "cuda":
            torch.cuda.synchronize()
        train_seconds += time.time() - t0
        print(f'epoch loss {epoch_loss / n:.2f}', file=sys.stderr)

    with torch.no_grad():
        def elbo(use_img, use_lab):
            experts = ([ie(xte)] if use_img else []) + ([le(yte)] if use_lab else [])
            mean, logvar = poe(experts)
            z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
            e = -kl(mean, logvar)
            if use_img:
                e = e - F.binary_cross_entropy_with_logits(idec(z), xte, reduction="none").sum(1)
            if use_lab:
                e = e - F.cross_entropy(ldec(z), yte, reduction="none")
            return e.mean().item()

        mean, _ = poe([ie(xte)])
        acc = (ldec(mean).argmax(1) == yte).float().mean().item()
        print(json.dumps({
            "device": a.device,
            "epochs": a.epochs,
            "train_seconds": train_seconds,
            "samples_per_second": n * a.epochs / train_seconds,
            "test_elbo_joint": elbo(1, 1),
            "test_elbo_image": elbo(1, 0),
            "test_elbo_label": elbo(0, 1),
            "image_to_label_accuracy": acc,
        }))


if __name__ == "__main__":
    main()
