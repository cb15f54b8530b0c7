using Toolkit.Checkpoints;
using Toolkit.Comm;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// One flat buffer of a <see cref="ShardedTrainer"/>: some of the model's parameters, padded to a multiple of n, with
/// this rank's slices of parameters (level p), accumulated gradients (level g) and optimizer state (level os), and the
/// collectives that move them. Whole-model execution has one unit; layer-wise execution one per block plus the root
/// (every parameter outside the blocks).
/// </summary>
internal sealed class ShardUnit : IDisposable
{
    private readonly ShardingPlan _plan;
    private readonly ScalarType _dtype;
    private readonly Device _device;
    // sizes are kept: released parameters are empty
    private readonly List<(Parameter Parameter, long Offset, long Count, long[] Shape)> _layout = [];
    private readonly Tensor? _master;            // level os slice, fp32 (mixed precision only)
    private Tensor? _average;                     // the averaged os-slice gradient between PrepareStep and ApplyStep

    /// <param name="parameters">The unit's parameters (in model order) with their offsets in the model's flat
    /// order.</param>
    /// <param name="initial">The model's initial values in model order (identical on every rank), read only where this
    /// rank keeps them.</param>
    /// <param name="runs">The unit's ranges in the model's flat order: (unit offset, model offset, count); the
    /// checkpoint's layout.</param>
    /// <param name="plan">The sharding plan.</param>
    /// <param name="world">All ranks.</param>
    /// <param name="dtype">Compute dtype of parameters and gradients.</param>
    /// <param name="device">Where the buffers live.</param>
    /// <param name="optimizer">AdamW's hyper-parameters.</param>
    public ShardUnit(IReadOnlyList<(Parameter Parameter, long ModelOffset)> parameters, Models.IParameterSource initial,
        IReadOnlyList<(long UnitOffset, long ModelOffset, long Count)> runs,
        ShardingPlan plan, Communicator world, ScalarType dtype, Device device, AdamWOptions optimizer)
    {
        _plan = plan;
        _dtype = dtype;
        _device = device;
        long offset = 0;
        foreach (var (p, _) in parameters)
        {
            _layout.Add((p, offset, p.numel(), p.shape));
            offset += p.numel();
        }
        Groups = new ParoGroups(world, plan.GroupSize, offset);
        Runs = runs;
        using var _ = no_grad();
        using (var values = Initial(initial, plan.Strategy.Parameters)) Parameters = values.to(dtype, copy: true);
        Gradients = zeros(Groups.Range(plan.Strategy.Gradients).Length, dtype: dtype, device: device);
        if (plan.Precision == ParoPrecision.Bf16) _master = Initial(initial, plan.Strategy.OptimizerStates);
        Optimizer = new FlatAdamW(Groups.Range(plan.Strategy.OptimizerStates).Length, device, optimizer);
    }

    private ShardingStrategy Strategy => _plan.Strategy;

    /// <summary>This rank's fp32 slice at <paramref name="level"/> of the unit's initial values (its padding zero),
    /// read from the source alone.</summary>
    private Tensor Initial(Models.IParameterSource source, ShardLevel level)
    {
        var (start, length) = Groups.Range(level);
        var slice = zeros(length, dtype: ScalarType.Float32, device: _device);
        foreach (var (unitOffset, modelOffset, count) in ParameterRuns(source.Count))
        {
            var (from, to) = (Math.Max(start, unitOffset), Math.Min(start + length, unitOffset + count));
            if (from >= to) continue;
            using var part = slice.narrow(0, from - start, to - from);
            if (part.device_type == DeviceType.CPU) source.Fill(modelOffset + (from - unitOffset), part);
            else
            {
                using var host = zeros(to - from, dtype: ScalarType.Float32);
                source.Fill(modelOffset + (from - unitOffset), host);
                part.copy_(host);
            }
        }
        return slice;
    }

    public ParoGroups Groups { get; }

    /// <summary>Level p slice, compute dtype.</summary>
    public Tensor Parameters { get; }

    /// <summary>Level g slice, compute dtype.</summary>
    public Tensor Gradients { get; }

    public FlatAdamW Optimizer { get; }

    /// <summary>(unit offset, model offset, count): where the unit's elements sit in the model's flat order.</summary>
    public IReadOnlyList<(long UnitOffset, long ModelOffset, long Count)> Runs { get; }

    /// <summary>Bytes of the full (padded) unit in the compute dtype: what a gather allocates.</summary>
    public long FullBytes => Groups.Padded * ElementSize;

    /// <summary>Bytes per element of parameters and gradients.</summary>
    public int ElementSize => _dtype == ScalarType.Float32 ? 4 : 2;

    public long StateBytes(out long parameters, out long gradients, out long optimizer)
    {
        parameters = Bytes(Parameters);
        gradients = Bytes(Gradients);
        optimizer = Optimizer.Bytes + (_master is null ? 0 : Bytes(_master));
        return parameters + gradients + optimizer;
    }

    /// <summary>The full parameter buffer: this rank's p slice when p = N, else a gathered copy
    /// (<paramref name="gathered"/> true).</summary>
    public Tensor GatherFull(out bool gathered)
    {
        gathered = Strategy.Parameters != ShardLevel.None;
        if (!gathered) return Parameters.alias();
        var full = zeros(Groups.Padded, dtype: _dtype, device: _device);
        AllGatherInto(full);
        return full;
    }

    /// <summary>Collective (p ≠ N): writes the full (padded) parameters into the first
    /// <see cref="ParoGroups.Padded"/> elements of <paramref name="target"/>.</summary>
    public void AllGatherInto(Tensor target)
    {
        using var _ = no_grad();
        // the views go now: they would keep the target alive
        using var views = NewDisposeScope();
        var full = target.narrow(0, 0, Groups.Padded);
        Slice(full, Strategy.Parameters).copy_(Parameters);
        Groups.AllGather(full, Strategy.Parameters, ShardLevel.None);
    }

    /// <summary>Points the unit's module parameters at <paramref name="full"/> (the unit's layout from its start; it
    /// may be longer).</summary>
    public void Attach(Tensor full)
    {
        using var _ = no_grad();
        // the views go now: the parameters alone hold the buffer
        using var views = NewDisposeScope();
        foreach (var (p, start, count, shape) in _layout)
            p.set_(full.narrow(0, start, count).view(shape));
    }

    /// <summary>Empties the unit's module parameters and drops their gradients.</summary>
    public void Release()
    {
        using var _ = no_grad();
        using var empties = NewDisposeScope();
        foreach (var (p, _, _, _) in _layout)
        {
            p.grad = null;
            p.set_(empty(0, dtype: _dtype, device: _device));
        }
    }

    /// <summary>
    /// Frees what the parameters point to but keeps their shapes (each becomes a stride-0 view of one zero), so
    /// autograd can still accumulate into gradient views of the right shape; their values must not be read again until
    /// the next <see cref="Attach"/> (a saved tensor that reads one fails loudly: parking changes its version).
    /// </summary>
    public void Park()
    {
        using var _ = no_grad();
        using var views = NewDisposeScope();
        var zero = zeros(1, dtype: _dtype, device: _device);
        foreach (var (p, _, _, shape) in _layout) p.set_(zero.expand(shape));
    }

    /// <summary>
    /// Adds <paramref name="alias"/> as a second parameter over <paramref name="original"/>'s place (a tied weight's
    /// second read, see <see cref="Models.ILayeredModule.TiedOutputAlias"/>): attached, released and given gradient
    /// views with it, so autograd adds both reads' gradients into the same part of the buffer.
    /// </summary>
    public void AddAlias(Parameter original, Parameter alias)
    {
        var (_, offset, count, shape) = _layout.Single(e => ReferenceEquals(e.Parameter, original));
        _layout.Add((alias, offset, count, shape));
    }

    /// <summary>A zeroed buffer of the full (padded) unit, or of <paramref name="elements"/>, in the compute
    /// dtype.</summary>
    public Tensor NewFullBuffer(long? elements = null) => zeros(elements ?? Groups.Padded, dtype: _dtype,
        device: _device);

    /// <summary>
    /// Points the parameters' gradients at views of <paramref name="flat"/> (full, padded): autograd then accumulates
    /// into it in place (a defined gradient is added to, outside grad mode), so no copy is made. A parameter the loss
    /// does not reach (an expert no token chose) leaves its part as it was.
    /// </summary>
    public void AttachGradients(Tensor flat)
    {
        using var _ = no_grad();
        // the views go now: the gradients alone hold the buffer
        using var views = NewDisposeScope();
        foreach (var (p, start, count, shape) in _layout)
            p.grad = flat.narrow(0, start, count).view(shape);
    }

    /// <summary>Whether any of the unit's parameters has a gradient.</summary>
    public bool HasGradients()
    {
        using var scope = NewDisposeScope();
        return _layout.Any(e => e.Parameter.grad is not null);
    }

    /// <summary>Drops the parameters' gradient views (the buffer they point into is then held only by its
    /// owner).</summary>
    public void DetachGradients()
    {
        foreach (var (p, _, _, _) in _layout) p.grad = null;
    }

    /// <summary>Sharded gradients (g = I or G): intra reduce-scatter (I), intra + inter reduce-scatter (G) of one
    /// micro-step's full gradient, then accumulate this rank's slice.</summary>
    public void ReduceMicroStepGradient(Tensor gradient)
    {
        switch (Strategy.Gradients)
        {
            case ShardLevel.Intra: Groups.Intra.ReduceScatter(gradient); break;
            case ShardLevel.Global: Groups.ReduceScatter(gradient, ShardLevel.Global); break;
            default: throw new InvalidOperationException(
                "Unsharded gradients (g = N) accumulate in place; there is nothing to reduce per micro-step.");
        }
        using var _ = no_grad();
        Gradients.add_(Slice(gradient, Strategy.Gradients));
    }

    /// <summary>Finishes the reduction, runs AdamW on the os slice, gathers the parameters back to level p and zeroes
    /// the accumulator; returns this rank's Σ of the averaged gradient's squares over its os slice.</summary>
    public double OptimizerStep(long microBatches)
    {
        var squares = PrepareStep(microBatches);
        ApplyStep(1);
        return squares;
    }

    /// <summary>
    /// The first half of <see cref="OptimizerStep"/>: finishes the reduction and averages the os slice's gradient
    /// (kept for <see cref="ApplyStep"/>); returns this rank's Σ of its squares. Gradient clipping needs every unit's
    /// squares, summed over ranks, before any unit updates.
    /// </summary>
    public double PrepareStep(long microBatches)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        // [os slice] summed over every micro-batch of every rank
        var gradient = ReduceToOptimizerLevel();
        using var count = microBatches.ToScalar();                                    // held for the call (TK0001)
        var average = gradient.to(ScalarType.Float32).div_(count);
        // fp32 (libtorch sums in cascade): an fp64 sum took about 8x longer
        var squares = (double)average.square().sum().item<float>();
        _average = average.MoveToOuterDisposeScope();
        return squares;
    }

    /// <summary>The second half of <see cref="OptimizerStep"/>: AdamW on the os slice with the averaged gradient
    /// times <paramref name="scale"/> (the clip coefficient, or 1), the gather back to level p, the accumulator
    /// zeroed.</summary>
    public void ApplyStep(double scale)
    {
        var average = _average ?? throw new InvalidOperationException("ApplyStep without PrepareStep");
        _average = null;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var held = average;
        if (scale != 1)
            using (var factor = scale.ToScalar()) average.mul_(factor);               // held for the call (TK0001)
        var (offset, length) = Groups.RangeWithin(Strategy.Parameters, Strategy.OptimizerStates);
        // the os slice inside the p slice (levels nest)
        var owned = Parameters.narrow(0, offset, length);
        if (_master is null)
        {
            Optimizer.Update(owned, average);
        }
        else
        {
            Optimizer.Update(_master, average);
            owned.copy_(_master);                                                     // fp32 master -> bf16 parameters
        }
        Groups.AllGather(Parameters, Strategy.OptimizerStates, Strategy.Parameters);
        Gradients.zero_();
    }

    /// <summary>Boundary: continue the gradient reduction from level g to level os and return the os slice.</summary>
    private Tensor ReduceToOptimizerLevel()
    {
        var os = Strategy.OptimizerStates;
        switch (Strategy.Gradients)
        {
            case ShardLevel.None:
                Groups.ReduceScatter(Gradients, os);
                return Slice(Gradients, os);
            case ShardLevel.Intra:
                Groups.ReduceIntraSlice(Gradients, os);
                var (offset, length) = Groups.RangeWithin(ShardLevel.Intra, os);
                return Gradients.narrow(0, offset, length);
            default:
                return Gradients;
        }
    }

    /// <summary>
    /// The pieces of this rank's slices a checkpoint holds, each with its offset in the model's flat order: the slices'
    /// overlap with the unit's runs (a unit's own padding is not saved).
    /// </summary>
    public IEnumerable<(Tensor Tensor, CheckpointComponent Component)> CheckpointPieces()
    {
        IEnumerable<(Tensor, CheckpointComponent)> Pieces(string name, Tensor slice, ShardLevel level)
        {
            var (start, length) = Groups.Range(level);
            foreach (var (unitOffset, modelOffset, count) in Runs)
            {
                var from = Math.Max(start, unitOffset);
                var to = Math.Min(start + length, unitOffset + count);
                if (from >= to) continue;
                yield return (slice.narrow(0, from - start, to - from),
                    new CheckpointComponent(name, slice.dtype.ToString(), modelOffset + (from - unitOffset),
                        to - from));
            }
        }
        foreach (var piece in Pieces("parameters", Parameters, Strategy.Parameters)) yield return piece;
        if (_master is not null) foreach (var piece in Pieces("master", _master,
            Strategy.OptimizerStates)) yield return piece;
        foreach (var piece in Pieces("exp_avg", Optimizer.ExpAvg, Strategy.OptimizerStates)) yield return piece;
        foreach (var piece in Pieces("exp_avg_sq", Optimizer.ExpAvgSq, Strategy.OptimizerStates)) yield return piece;
    }

    /// <summary>Whether the unit keeps an fp32 master copy (mixed precision).</summary>
    public bool HasMaster => _master is not null;

    /// <summary>Collective: copies the unit's parameters, in fp32, into their places of <paramref name="model"/> (the
    /// model's flat order).</summary>
    public void GatherInto(Tensor model)
    {
        using var noGrad = no_grad();
        using var full = GatherFull(out var _);
        foreach (var (unitOffset, modelOffset, count) in ParameterRuns(model.numel()))
        {
            // Both views are held for the call: unheld, the GC's finaliser could free one while libtorch copies.
            using var to = model.narrow(0, modelOffset, count);
            using var from = full.narrow(0, unitOffset, count);
            to.copy_(from);
        }
    }

    /// <summary><see cref="Runs"/> cut to the model's <paramref name="elements"/> parameters (a run may cover the
    /// model's padding).</summary>
    private IEnumerable<(long UnitOffset, long ModelOffset, long Count)> ParameterRuns(long elements) =>
        Runs.Select(r => (r.UnitOffset, r.ModelOffset, Count: Math.Min(r.Count,
            elements - r.ModelOffset))).Where(r => r.Count > 0);

    private Tensor Slice(Tensor full, ShardLevel level)
    {
        var (offset, length) = Groups.Range(level);
        return full.narrow(0, offset, length);
    }

    public static long Bytes(Tensor t) => t.numel() * t.element_size();

    public void Dispose()
    {
        Parameters.Dispose();
        Gradients.Dispose();
        _master?.Dispose();
        _average?.Dispose();
        Optimizer.Dispose();
        Groups.Dispose();
    }
}
