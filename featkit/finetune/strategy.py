"""Which parameters a fine-tuning run trains, at which learning rate, and which BatchNorm
layers keep their statistics.

A backbone is cut into *stages*, from the input to the output:

- timm networks: the coarse groups of their own ``group_matcher`` (the ones timm's layer
  decay uses): the stem, then each stage of blocks (``blocks.K`` of an EfficientNet or a
  ViT, ``layerK`` of a ResNet, ``stages.K`` of a ConvNeXt); what follows the last block
  (EfficientNet's ``conv_head``, a ViT's final norm) belongs to the last stage;
- torchvision networks (and timm ones without a matcher): the top-level modules, a module
  holding most of the parameters (``features``, a ViT's ``encoder``) split into its
  children, and consecutive single layers (``conv1``, ``bn1``) kept together:
  ``layer1``..``layer4`` of a ResNet, ``features.K`` of an EfficientNet, a MobileNet or a
  ConvNeXt, ``encoder.layers.encoder_layer_K`` of a ViT.

The network's own classifier is never a stage: a new linear head replaces it.

Strategies: ``"head"`` trains the new head only (the backbone is frozen and runs in eval
mode); ``"last:N"`` also the last N stages; ``"full"`` every stage. Stage i of S gets the
learning rate ``lr * layer_decay ** (S - i)`` (the head gets ``lr``): layer-wise decreasing
rates, the lower layers moving least. Biases and normalisation weights get no weight
decay.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from featkit.exceptions import InvalidParameterError

__all__ = [
    "STRATEGIES",
    "Stage",
    "Strategy",
    "apply_strategy",
    "backbone_stages",
    "domain_groups",
    "param_groups",
    "set_train_mode",
]

STRATEGIES = ("head", "last:N", "full")


@dataclass(frozen=True)
class Strategy:
    """A parsed ``strategy`` parameter: ``kind`` "head", "last" (with ``n``) or "full"."""

    kind: str
    n: int = 0

    @classmethod
    def parse(cls, value: object) -> Strategy:
        if value in ("head", "full"):
            return cls(str(value))
        if isinstance(value, str) and value.startswith("last:"):
            n = value.removeprefix("last:")
            if n.isdigit() and int(n) >= 1:
                return cls("last", int(n))
        raise InvalidParameterError(
            "strategy must be 'head' (a new linear head on the frozen backbone), 'last:N' "
            f"(also the last N stages, N >= 1) or 'full' (everything); got {value!r}"
        )

    def trainable(self, stages: list[Stage]) -> list[int]:
        """Indices of the stages this strategy trains."""
        if self.kind == "head":
            return []
        if self.kind == "full":
            return list(range(len(stages)))
        if self.n > len(stages):
            names = ", ".join(s.name for s in stages)
            raise InvalidParameterError(
                f"strategy='last:{self.n}': this network has {len(stages)} stages ({names}); "
                f"use last:1 .. last:{len(stages)}, or 'full'"
            )
        return list(range(len(stages) - self.n, len(stages)))


@dataclass(frozen=True)
class Stage:
    """A stage of a backbone: a name and its parameters' names in the network."""

    name: str
    params: tuple[str, ...]


def backbone_stages(net: nn.Module, library: str, classifier: str) -> list[Stage]:
    """The stages of ``net``, input first, without its classifier ``classifier``."""
    groups: list[list[str]] | None = None
    if library == "timm":
        groups = _timm_groups(net)
    if groups is None:
        groups = _module_groups(net)
    prefix = f"{classifier}." if classifier else None
    stages = []
    for params in groups:
        kept = tuple(p for p in params if prefix is None or not p.startswith(prefix))
        if kept:
            stages.append(Stage(_group_name(list(kept)), kept))
    return stages


def _timm_groups(net: nn.Module) -> list[list[str]] | None:
    from timm.models import group_parameters

    try:
        matcher = net.group_matcher(coarse=True)
    except (AttributeError, NotImplementedError):
        return None
    return [list(names) for _, names in sorted(group_parameters(net, matcher).items())]


def _group_name(names: list[str]) -> str:
    """A readable name for a group of parameters: the module holding them all
    ("blocks.3"), else the modules joined by "+" ("conv_stem+bn1", "blocks.6+conv_head+bn2")."""
    modules = [n.split(".")[:-1] or [n] for n in names]
    by_top: dict[str, list[list[str]]] = {}
    for parts in modules:
        by_top.setdefault(parts[0], []).append(parts)
    out = []
    for paths in by_top.values():
        common: list[str] = []
        for level in zip(*paths, strict=False):
            if len(set(level)) != 1:
                break
            common.append(level[0])
        out.append(".".join(common))
    return "+".join(out)


def _module_groups(net: nn.Module) -> list[list[str]]:
    """Modules as stages: the top-level ones, a module holding most of the parameter
    tensors (``features``, a ViT's ``encoder``) replaced by its children (and its own
    parameters) until none does, consecutive single layers (``conv1``, ``bn1``) together."""
    total = sum(1 for _ in net.parameters())
    # (name, module or None, its parameter names); None: the own parameters of a module
    # that was split, a single layer for what follows.
    units: list[tuple[str, nn.Module | None, list[str]]] = [
        ("", None, [n for n, _ in net.named_parameters(recurse=False)])
    ]
    units += [
        (n, m, [f"{n}.{p}" for p, _ in m.named_parameters()]) for n, m in net.named_children()
    ]
    while True:
        big = max(range(len(units)), key=lambda i: len(units[i][2]))
        name, module, params = units[big]
        if 2 * len(params) <= total or module is None or not any(True for _ in module.children()):
            break
        own = [f"{name}.{p}" for p, _ in module.named_parameters(recurse=False)]
        units[big : big + 1] = [
            (name, None, own),
            *(
                (f"{name}.{n}", m, [f"{name}.{n}.{p}" for p, _ in m.named_parameters()])
                for n, m in module.named_children()
            ),
        ]
    groups: list[list[str]] = []
    leaf_run = False
    for _, module, params in units:
        if not params:
            continue
        is_leaf = module is None or not any(True for _ in module.children())
        if is_leaf and leaf_run:
            groups[-1].extend(params)
        else:
            groups.append(list(params))
        leaf_run = is_leaf
    return groups


def apply_strategy(net: nn.Module, stages: list[Stage], trainable: list[int]) -> None:
    """Freeze every parameter of ``net``, then unfreeze those of the ``trainable`` stages."""
    net.requires_grad_(False)
    params = dict(net.named_parameters())
    for i in trainable:
        for name in stages[i].params:
            params[name].requires_grad_(True)


def param_groups(
    model: nn.Module,
    stages: list[Stage],
    trainable: list[int],
    *,
    lr: float,
    layer_decay: float,
    weight_decay: float,
) -> list[dict]:
    """AdamW parameter groups: the head at ``lr``, stage i of S at ``lr * layer_decay **
    (S - i)``; tensors of one dimension (biases, norm weights) without weight decay."""
    named = [("head", lr, list(model.head.named_parameters()))]
    net_params = dict(model.net.named_parameters())
    for i in reversed(trainable):
        scale = layer_decay ** (len(stages) - i)
        named.append(
            (
                stages[i].name or f"stage{i}",
                lr * scale,
                [(n, net_params[n]) for n in stages[i].params],
            )
        )
    groups = []
    for name, group_lr, params in named:
        groups += _decay_groups(name, group_lr, [p for _, p in params], weight_decay)
    return groups


def domain_groups(module: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """AdamW parameter groups of a domain discriminator, at ``lr``."""
    return _decay_groups("domain", lr, list(module.parameters()), weight_decay)


def _decay_groups(name: str, lr: float, params: list, weight_decay: float) -> list[dict]:
    """Weight decay for matrices, none for tensors of one dimension (biases, norms)."""
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = []
    for kind, ps, wd in (("decay", decay, weight_decay), ("no_decay", no_decay, 0.0)):
        if ps:
            groups.append({"params": ps, "lr": lr, "weight_decay": wd, "name": f"{name}/{kind}"})
    return groups


def set_train_mode(model: nn.Module, freeze_bn: bool) -> None:
    """Training mode for what trains: a module whose parameters are all frozen runs in eval
    mode (its BatchNorm statistics stay, its dropout is off), and with ``freeze_bn`` every
    BatchNorm layer keeps its running statistics (its scale and shift still train)."""
    model.train()
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
        elif freeze_bn and isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
