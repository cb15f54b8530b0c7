using Toolkit.Comm;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// PaRO-DP data-parallel training of any TorchSharp module with AdamW under a sharding strategy.
/// </summary>
/// <remarks>
/// <para>All parameters live in one flat buffer (padded to a multiple of n). Between steps a rank
/// keeps only its slice of parameters (level p), of accumulated gradients (level g) and of optimizer
/// state (level os); the module's own parameter tensors are emptied.</para>
/// <para>One optimizer step over A micro-batches (PaRO §3.2, the authors' schedule):</para>
/// <list type="number">
/// <item>per micro-step: gather parameters to full size if p ≠ N (intra all-gather for I; inter then
/// intra for G), forward and backward, release them; then reduce the gradient to level g and add it
/// to the accumulator: nothing for N, intra reduce-scatter for I, intra then inter reduce-scatter
/// for G;</item>
/// <item>at the boundary: finish the reduction to level os (for g = I only the 1/m slice crosses
/// groups: inter all-reduce when os = I, inter reduce-scatter when os = G; for g = N the whole
/// hierarchical reduction happens here);</item>
/// <item>AdamW on the os slice (fp32), then all-gather from level os back to level p.</item>
/// </list>
/// <para>Gathered parameters are kept through backward (not re-gathered), so ZeRO-3 (GGG) moves
/// A·u inter-group bytes for parameters, not the 2A·u of implementations that re-gather.</para>
/// </remarks>
public sealed class ShardedTrainer : IDisposable
{
    private readonly nn.Module _model;
    private readonly ShardingPlan _plan;
    private readonly ParoGroups _groups;
    private readonly List<(Parameter Parameter, long Offset, long Count, long[] Shape)> _layout;   // sizes are kept: released parameters are empty
    private readonly ScalarType _dtype;
    private readonly Device _device;
    private readonly Tensor _parameters;      // level p slice, compute dtype
    private readonly Tensor _gradients;       // level g slice, compute dtype
    private readonly Tensor? _master;         // level os slice, fp32 (mixed precision only)
    private readonly FlatAdamW _optimizer;    // moments for the level os slice
    private long _peakTransientBytes;
    private double _gradientSquares;

    private ShardedTrainer(nn.Module model, ShardingPlan plan, Communicator world, AdamWOptions optimizer)
    {
        _model = model;
        _plan = plan.Validate(world.Size);
        _device = model.parameters().First().device;
        _dtype = plan.Precision == ParoPrecision.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32;
        var total = model.parameters().Sum(p => p.numel());
        _groups = new ParoGroups(world, plan.GroupSize, total);

        using var _ = no_grad();
        using var full = zeros(_groups.Padded, dtype: ScalarType.Float32, device: _device);   // initial fp32 values, identical on every rank
        long offset = 0;
        foreach (var p in model.parameters())
        {
            full.narrow(0, offset, p.numel()).copy_(p.detach().flatten());
            offset += p.numel();
        }
        // Module.to(dtype) replaces the parameter objects, so the layout is taken afterwards.
        if (plan.Precision == ParoPrecision.Bf16) model.to(ScalarType.BFloat16);
        _layout = [];
        offset = 0;
        foreach (var p in model.parameters())
        {
            _layout.Add((p, offset, p.numel(), p.shape));
            offset += p.numel();
        }
        _parameters = Slice(full, Strategy.Parameters).to(_dtype).clone();
        _gradients = zeros(_groups.Range(Strategy.Gradients).Length, dtype: _dtype, device: _device);
        if (plan.Precision == ParoPrecision.Bf16) _master = Slice(full, Strategy.OptimizerStates).clone();
        _optimizer = new FlatAdamW(_groups.Range(Strategy.OptimizerStates).Length, _device, optimizer);
        ReleaseModuleParameters();
    }

    /// <summary>The strategy being trained.</summary>
    public ShardingStrategy Strategy => _plan.Strategy;

    /// <summary>The plan (strategy, m, A, precision).</summary>
    public ShardingPlan Plan => _plan;

    /// <summary>AdamW's hyper-parameters; set between steps to change them (e.g. after a warm start), keeping the moments.</summary>
    public AdamWOptions Optimizer
    {
        get => _optimizer.Options;
        set => _optimizer.Options = value;
    }

    /// <summary>Starts a new phase with fresh AdamW state: moments zeroed, step count 0, new hyper-parameters (the parameters stay).</summary>
    public void ResetOptimizer(AdamWOptions options)
    {
        _optimizer.Options = options;
        _optimizer.Reset();
    }

    /// <summary>Optimizer steps taken.</summary>
    public long StepsTaken => _optimizer.Step;

    /// <summary>Number of model parameters (Ψ), before padding.</summary>
    public long ParameterCount => _groups.Elements;

    /// <summary>Flat buffer length after padding to a multiple of the rank count.</summary>
    public long PaddedParameterCount => _groups.Padded;

    /// <summary>Wraps <paramref name="model"/> (all of whose parameters are trained; identical on every rank) for sharded training over <paramref name="world"/>.</summary>
    /// <exception cref="ShardingPlanException">The strategy is ineffective.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The group size does not divide the rank count, or A &lt; 1.</exception>
    public static ShardedTrainer Create(nn.Module model, ShardingPlan plan, Communicator world, AdamWOptions? optimizer = null) =>
        new(model, plan, world, (optimizer ?? new AdamWOptions()).Validate());

    /// <summary>
    /// One optimizer step over the micro-batches (A = <c>microBatches.Count</c>, which must equal the
    /// plan's accumulation). Each function runs the model on one micro-batch and returns its mean
    /// loss; the step minimises the mean over all ranks' micro-batches.
    /// </summary>
    /// <returns>This rank's mean loss over its micro-batches.</returns>
    public double Step(IReadOnlyList<Func<nn.Module, Tensor>> microBatches)
    {
        if (microBatches.Count != _plan.Accumulation)
            throw new ArgumentException($"The plan accumulates {_plan.Accumulation} micro-batches per step; {microBatches.Count} were given.", nameof(microBatches));
        double lossSum = 0;
        foreach (var microBatch in microBatches) lossSum += MicroStep(microBatch);
        OptimizerStep();
        return lossSum / microBatches.Count;
    }

    /// <summary>Bytes this rank holds for each component, measured from its buffers.</summary>
    public ParoMemory Memory => new(
        ParametersBytes: Bytes(_parameters),
        GradientsBytes: Bytes(_gradients),
        OptimizerBytes: _optimizer.Bytes + (_master is null ? 0 : Bytes(_master)),
        PeakTransientBytes: _peakTransientBytes);

    /// <summary>
    /// Collective: writes this rank's slices to <paramref name="directory"/> (<c>rank-R.bin</c>) and, on
    /// rank 0, the manifest. Call between steps (gradients are then zero and not saved).
    /// </summary>
    public void SaveCheckpoint(string directory)
    {
        Directory.CreateDirectory(directory);
        var file = $"rank-{_groups.World.Rank}.bin";
        var sha = CheckpointFiles.Write(Path.Combine(directory, file), CheckpointTensors().Select(c => c.Tensor));
        var shard = new CheckpointShard(_groups.World.Rank, file, sha, CheckpointTensors().Select(c => c.Component).ToList());
        // Every rank's entry reaches rank 0 through the file system after a barrier (no counted traffic).
        Runtime.ToolkitJson.Write(Path.Combine(directory, file + ".json"), shard);
        _groups.World.Barrier();
        if (_groups.World.Rank == 0)
        {
            var shards = Enumerable.Range(0, _groups.N).Select(r => Runtime.ToolkitJson.Read<CheckpointShard>(Path.Combine(directory, $"rank-{r}.bin.json"))).ToList();
            var manifest = new CheckpointManifest(1, Strategy.Code, _groups.N, _groups.M, _plan.Precision.ToString().ToLowerInvariant(),
                _groups.Elements, _groups.Padded, _optimizer.Step, shards);
            Runtime.ToolkitJson.Write(Path.Combine(directory, CheckpointManifest.FileName), manifest);
            foreach (var r in Enumerable.Range(0, _groups.N)) File.Delete(Path.Combine(directory, $"rank-{r}.bin.json"));
        }
        _groups.World.Barrier();
    }

    /// <summary>
    /// Restores this rank's slices and the optimizer step from a checkpoint written under any plan: another
    /// strategy, rank count, group size or precision (re-sharding is a re-slicing of the flat buffers, see
    /// <see cref="CheckpointReader"/>). Reads only the rank files that hold this rank's ranges; no communication.
    /// </summary>
    /// <remarks>Across precisions: fp32 parameters come from a bf16 checkpoint's fp32 master copy, and a bf16 run's master copy from an fp32 checkpoint's parameters.</remarks>
    /// <exception cref="ArgumentException">The checkpoint was written for a model with another parameter count.</exception>
    /// <exception cref="InvalidDataException">A file is missing, corrupt or truncated, or the manifest's format is unknown.</exception>
    public void LoadCheckpoint(string directory)
    {
        var manifest = CheckpointManifest.Read(directory);
        if (manifest.Format != 1) throw new InvalidDataException($"Checkpoint {directory} has format {manifest.Format}; this toolkit reads format 1.");
        if (manifest.Parameters != _groups.Elements)
            throw new ArgumentException(
                $"Checkpoint {directory} holds a model of {manifest.Parameters:N0} parameters; this job's model has {_groups.Elements:N0}. Resume with the same model settings (--model and its sizes).");
        var reader = new CheckpointReader(directory, manifest);
        foreach (var (tensor, component) in CheckpointTensors())
        {
            var source = component.Name switch
            {
                "parameters" when _master is null && reader.Has("master") => "master",   // fp32 run from a bf16 checkpoint: the fp32 values
                "master" when !reader.Has("master") => "parameters",                      // bf16 run from an fp32 checkpoint
                var name => name,
            };
            reader.Fill(source, component.Offset, tensor);
        }
        _optimizer.SetStep(manifest.Step);
    }

    private IEnumerable<(Tensor Tensor, CheckpointComponent Component)> CheckpointTensors()
    {
        (Tensor, CheckpointComponent) Entry(string name, Tensor t, ShardLevel level) =>
            (t, new CheckpointComponent(name, t.dtype.ToString(), _groups.Range(level).Offset, t.numel()));
        yield return Entry("parameters", _parameters, Strategy.Parameters);
        if (_master is not null) yield return Entry("master", _master, Strategy.OptimizerStates);
        yield return Entry("exp_avg", _optimizer.ExpAvg, Strategy.OptimizerStates);
        yield return Entry("exp_avg_sq", _optimizer.ExpAvgSq, Strategy.OptimizerStates);
    }

    /// <summary>
    /// Collective: the L2 norm of the last step's averaged gradient over the whole model. Each rank knows
    /// the squares of its optimizer-level slice; slices are replicated n times (os = N), g times (os = I) or
    /// not at all (os = G), which the sum divides out. Its all-reduce of one double is counted traffic, so
    /// jobs that must match the cost model byte for byte do not call it.
    /// </summary>
    public double GradientNorm()
    {
        var total = new[] { _gradientSquares };
        _groups.World.AllReduce<double>(total);
        var replicas = Strategy.OptimizerStates switch { ShardLevel.None => _groups.N, ShardLevel.Intra => _groups.G, _ => 1 };
        return Math.Sqrt(total[0] / replicas);
    }

    /// <summary>Collective: every rank returns the full fp32 parameter vector (Ψ elements, module order).</summary>
    public float[] GatherParameters()
    {
        using var _ = no_grad();
        using var full = GatherFull();
        using var values = full.narrow(0, 0, _groups.Elements).to(ScalarType.Float32).cpu();
        return values.data<float>().ToArray();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _parameters.Dispose();
        _gradients.Dispose();
        _master?.Dispose();
        _optimizer.Dispose();
        _groups.Dispose();
    }

    private double MicroStep(Func<nn.Module, Tensor> microBatch)
    {
        using var scope = NewDisposeScope();
        var full = GatherFull();                                                      // [Padded] compute dtype
        AttachModuleParameters(full);
        var loss = microBatch(_model);
        loss.backward();
        var gradient = zeros(_groups.Padded, dtype: _dtype, device: _device);         // [Padded] this rank's gradient
        using (no_grad())
            foreach (var (p, start, count, _) in _layout)
                if (p.grad is { } g) gradient.narrow(0, start, count).copy_(g.flatten());   // a parameter the loss did not touch (an expert no token chose) has no gradient: it stays 0
        _peakTransientBytes = Math.Max(_peakTransientBytes,
            (Strategy.Parameters == ShardLevel.None ? 0 : Bytes(full)) + Bytes(gradient) + Bytes(gradient));   // gathered params, autograd grads, staging
        ReleaseModuleParameters();
        ReduceMicroStepGradient(gradient);
        return loss.to(ScalarType.Float32).item<float>();
    }

    /// <summary>Level g: nothing (N), intra reduce-scatter (I), intra + inter reduce-scatter (G); then accumulate this rank's slice.</summary>
    private void ReduceMicroStepGradient(Tensor gradient)
    {
        switch (Strategy.Gradients)
        {
            case ShardLevel.Intra: _groups.Intra.ReduceScatter(gradient); break;
            case ShardLevel.Global: _groups.ReduceScatter(gradient, ShardLevel.Global); break;
        }
        using var _ = no_grad();
        _gradients.add_(Slice(gradient, Strategy.Gradients));
    }

    private void OptimizerStep()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var gradient = ReduceToOptimizerLevel();                                      // [os slice] summed over every micro-batch of every rank
        var average = gradient.to(ScalarType.Float32).div_(_groups.N * _plan.Accumulation);
        _gradientSquares = average.square().sum(ScalarType.Float64).item<double>();   // this rank's os slice, for GradientNorm (summed in fp64)
        var (offset, length) = _groups.RangeWithin(Strategy.Parameters, Strategy.OptimizerStates);
        var owned = _parameters.narrow(0, offset, length);                            // the os slice inside the p slice (levels nest)
        if (_master is null)
        {
            _optimizer.Update(owned, average);
        }
        else
        {
            _optimizer.Update(_master, average);
            owned.copy_(_master);                                                     // fp32 master -> bf16 parameters
        }
        _groups.AllGather(_parameters, Strategy.OptimizerStates, Strategy.Parameters);
        _gradients.zero_();
    }

    /// <summary>Boundary: continue the gradient reduction from level g to level os and return the os slice.</summary>
    private Tensor ReduceToOptimizerLevel()
    {
        var os = Strategy.OptimizerStates;
        switch (Strategy.Gradients)
        {
            case ShardLevel.None:
                _groups.ReduceScatter(_gradients, os);
                return Slice(_gradients, os);
            case ShardLevel.Intra:
                _groups.ReduceIntraSlice(_gradients, os);
                var (offset, length) = _groups.RangeWithin(ShardLevel.Intra, os);
                return _gradients.narrow(0, offset, length);
            default:
                return _gradients;
        }
    }

    /// <summary>The full parameter buffer: this rank's p slice when p = N, else a transient gathered copy.</summary>
    private Tensor GatherFull()
    {
        if (Strategy.Parameters == ShardLevel.None) return _parameters.alias();
        var full = zeros(_groups.Padded, dtype: _dtype, device: _device);
        using (no_grad()) Slice(full, Strategy.Parameters).copy_(_parameters);
        _groups.AllGather(full, Strategy.Parameters, ShardLevel.None);
        return full;
    }

    private void AttachModuleParameters(Tensor full)
    {
        using var _ = no_grad();
        foreach (var (p, start, count, shape) in _layout)
            p.set_(full.narrow(0, start, count).view(shape));
    }

    private void ReleaseModuleParameters()
    {
        using var _ = no_grad();
        foreach (var (p, _, _, _) in _layout)
        {
            p.grad = null;
            p.set_(empty(0, dtype: _dtype, device: _device));
        }
    }

    private Tensor Slice(Tensor full, ShardLevel level)
    {
        var (offset, length) = _groups.Range(level);
        return full.narrow(0, offset, length);
    }

    private static long Bytes(Tensor t) => t.numel() * t.element_size();
}

/// <summary>Bytes one rank holds, measured from its buffers.</summary>
/// <param name="ParametersBytes">Parameter slice (level p).</param>
/// <param name="GradientsBytes">Gradient accumulator slice (level g).</param>
/// <param name="OptimizerBytes">Adam moments, plus the fp32 master copy in mixed precision (level os).</param>
/// <param name="PeakTransientBytes">Largest transient allocation of a micro-step: gathered parameters (when p ≠ N), the autograd gradients and their flat staging copy.</param>
public sealed record ParoMemory(long ParametersBytes, long GradientsBytes, long OptimizerBytes, long PeakTransientBytes)
{
    /// <summary>Persistent model-state bytes (parameters + gradients + optimizer).</summary>
    public long ModelStateBytes => ParametersBytes + GradientsBytes + OptimizerBytes;

    /// <summary>Model states plus the peak transient.</summary>
    public long PeakBytes => ModelStateBytes + PeakTransientBytes;
}
