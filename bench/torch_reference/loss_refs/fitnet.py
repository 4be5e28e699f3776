"""FitNets with RepDistiller's regressor: ConvReg (models/util.py) in training mode, then HintLoss
(distiller_zoo/FitNet.py: nn.MSELoss, mean), for the three resamplings ConvReg learns."""
import torch

from loss_refs.common import randn

REFERENCE = "RepDistiller b84f547 models/util.py ConvReg + distiller_zoo/FitNet.py HintLoss"


def make_case(s_shape, t_shape):
    def make(gen):
        from models.util import ConvReg
        from distiller_zoo.FitNet import HintLoss
        reg = ConvReg(s_shape, t_shape).double().train()
        params = {"conv.weight": reg.conv.weight, "conv.bias": reg.conv.bias,
                  "bn.weight": reg.bn.weight, "bn.bias": reg.bn.bias}
        with torch.no_grad():  # seeded values (BN affine away from 1/0 so its gradients matter)
            for name, p in params.items():
                p.copy_(randn(gen, *p.shape, scale=0.5) + (1.0 if name == "bn.weight" else 0.0))
        # A conv bias before a training-mode BatchNorm has no effect (BN subtracts the batch mean),
        # so its gradient is zero up to rounding: not compared.
        reg.conv.bias.requires_grad_(False)
        student = randn(gen, *s_shape, grad=True)
        teacher = torch.relu(randn(gen, *t_shape))
        loss = HintLoss()(reg(student), teacher)
        inputs = {"student": student, "teacher": teacher}
        inputs.update(params)
        return dict(inputs=inputs, loss=loss, reference=REFERENCE,
                    meta={"student_shape": list(s_shape), "teacher_shape": list(t_shape)})
    return make


def cases():
    return {"fitnet_convreg_halve": make_case((4, 3, 8, 8), (4, 5, 4, 4)),
            "fitnet_convreg_double": make_case((4, 3, 4, 4), (4, 5, 8, 8)),
            "fitnet_convreg_same": make_case((4, 3, 4, 4), (4, 5, 4, 4))}
