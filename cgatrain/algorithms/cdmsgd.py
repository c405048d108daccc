"""CDMSGD: CDSGD with momentum (Jiang et al., NeurIPS 2017, section 4 and its supplement).

The paper puts the momentum variants in a supplement we do not have and says its experiments use
Nesterov momentum; the update below is the authors' public code's (velocity buffer, learning rate
inside it). `nesterov=false` gives the Polyak (heavy-ball) form, which is the CGA paper's DPMSGD.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from cgatrain.algorithms.base import register
from cgatrain.algorithms.dpmsgd import DPMSGD
from cgatrain.algorithms.momentum import Momentum
from cgatrain.option_checks import flag


@register
class CDMSGD(DPMSGD):
    """Per step, agent j (one gossip round, overlapped with the gradient at x_j):

    Nesterov (default): v_j <- mu v_j - alpha g_j(x_j) ; x_j <- sum_l pi_jl x_l + mu v_j - alpha g_j(x_j)
    Polyak:             v_j <- mu v_j - alpha g_j(x_j) ; x_j <- sum_l pi_jl x_l + v_j

    DPMSGD's step with this momentum: only the momentum form differs.
    """

    name = "cdmsgd"
    hyperparameters: ClassVar[dict[str, Any]] = {"momentum": 0.9, "nesterov": True}

    @classmethod
    def check_hyperparameters(cls, hparams: Mapping[str, Any]) -> None:
        super().check_hyperparameters(hparams)
        flag({**cls.hyperparameters, **hparams}["nesterov"], "algorithm.nesterov")

    def build_momentum(self) -> Momentum:
        return Momentum(float(self.hparams["momentum"]), nesterov=bool(self.hparams["nesterov"]), buffer="velocity")

