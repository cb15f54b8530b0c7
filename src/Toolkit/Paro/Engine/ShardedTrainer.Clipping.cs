using Toolkit.Comm;

namespace Toolkit.Paro;

/// <summary>The end of a step: every unit's optimizer step, with the gradient clipped to a global norm when
/// <see cref="AdamWOptions.MaxGradNorm"/> asks for it; and the gradient norm.</summary>
public sealed partial class ShardedTrainer
{
    private double _gradientSquares;   // this rank's Σ of the averaged gradient's squares over its os slices
    private double? _stepNorm;         // the global norm, when the step computed it (clipping)

    /// <summary>
    /// Collective: the L2 norm of the last step's averaged gradient over the whole model, before any clipping. Each
    /// rank knows the squares of its optimizer-level slice; slices are replicated n times (os = N), g times (os = I)
    /// or not at all (os = G), which the sum divides out. Its all-reduce of one double is counted traffic, so jobs
    /// that must match the cost model byte for byte do not call it. A clipped step has already computed it: then
    /// nothing is sent.
    /// </summary>
    public double GradientNorm() => _stepNorm ?? GlobalNorm(_gradientSquares);

    /// <summary>
    /// Runs every unit's optimizer step. With a maximum norm, first the global norm ‖g‖ (one all-reduce of one
    /// double), then every unit's averaged gradient times min(1, max / (‖g‖ + 1e-6)), as
    /// <c>torch.nn.utils.clip_grad_norm_</c> does; each unit holds its averaged os slice until the norm is known.
    /// </summary>
    private void FinishStep()
    {
        var microBatches = (long)_world.Size * _plan.Accumulation;
        var max = Optimizer.MaxGradNorm;
        (_gradientSquares, _stepNorm) = (0, null);
        if (max <= 0)
        {
            foreach (var unit in _units) _gradientSquares += unit.OptimizerStep(microBatches);
            return;
        }
        foreach (var unit in _units) _gradientSquares += unit.PrepareStep(microBatches);
        var norm = GlobalNorm(_gradientSquares);
        _stepNorm = norm;
        var scale = Math.Min(1, max / (norm + 1e-6));
        foreach (var unit in _units) unit.ApplyStep(scale);
    }

    private double GlobalNorm(double squares)
    {
        var total = new[] { squares };
        _world.AllReduce<double>(total);
        var replicas = Strategy.OptimizerStates switch { ShardLevel.None => _world.Size,
            ShardLevel.Intra => _world.Size / _plan.GroupSize, _ => 1 };
        return Math.Sqrt(total[0] / replicas);
    }
}
