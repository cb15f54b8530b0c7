using Toolkit.Comm;
using Toolkit.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// PaRO-DP data-parallel training of any TorchSharp module with AdamW under a sharding strategy.
/// </summary>
/// <remarks>
/// <para>All parameters live in one flat buffer (padded to a multiple of n; in layer-wise execution, one per
/// unit, see below). Between steps a rank keeps only its slice of parameters (level p), of accumulated gradients
/// (level g) and of optimizer state (level os); the module's own parameter tensors are emptied.</para>
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
/// <para>In whole-model execution gathered parameters are kept through backward (not re-gathered), so ZeRO-3 (GGG)
/// moves A·u inter-group bytes for parameters, not the 2A·u of implementations that re-gather.</para>
/// <para>Autograd writes gradients straight into flat buffers (each parameter's <c>grad</c> is a view): into the
/// level-g accumulator itself when g = N, else into a transient full buffer that is reduce-scattered.</para>
/// <para>Layer-wise execution (<see cref="ShardingPlan.Layerwise"/>, FSDP's schedule) splits the flat buffer into
/// units: the root (parameters outside the blocks: embeddings, final norm), gathered at the micro-step's start,
/// and one unit per block of an <see cref="ILayeredModule"/>, each padded and sharded on its own. The blocks'
/// gathers and gradient reductions run on the rank's <see cref="CommStream"/>, overlapping its computation: a
/// block's forward waits for its gather and queues the next block's; its backward waits for its gather again,
/// queues the previous block's, back-propagates and queues the reduction of its gradient to level g (see
/// <see cref="BlockCall"/>). When the blocks' backward starts, the tied head's backward is done: the root's parameters
/// are parked and its gradient so far reduced, and the embeddings' backward writes into a fresh root buffer after the
/// blocks (<see cref="SplitRoot"/>; not when a micro-batch runs the model twice). For that gradient to include the
/// head's, the head reads a tied weight through its own leaf (<see cref="ILayeredModule.TiedOutputAlias"/>, attached
/// over the same part of the root's buffers): through one leaf autograd would hold the head's gradient until the
/// embedding's, after every block. For the release to free memory, no view of the root's buffers outlives its use (the
/// views made to attach parameters and gradients, or to gather, go at once). What this costs is
/// <see cref="LayerwiseCostModel"/>'s: the peak holds two blocks' parameters and gradients in flight (one block's
/// parameters without <see cref="ShardingPlan.Prefetch"/>) instead of the model, for one more gather of the blocks per
/// micro-step (2A·u for GGG) and one more reduction of the root's gradient; <see cref="ShardingPlan.Recompute"/> adds
/// one more forward of each block instead of its recorded activations.</para>
/// <para>Checkpoints are written in the model's flat order whatever the units, so they resume across strategies,
/// rank counts, group sizes, precisions and both executions.</para>
/// </remarks>
public sealed partial class ShardedTrainer : IDisposable
{
    private readonly nn.Module _model;
    private readonly ShardingPlan _plan;
    private readonly Communicator _world;
    private readonly List<ShardUnit> _units = [];
    // the whole model, or (layer-wise) every parameter outside the blocks
    private readonly ShardUnit _root;
    private readonly ILayeredModule? _layered;
    private readonly long _elements;
    private readonly string _fingerprint;
    private long _transientBytes, _peakTransientBytes;

    // Layer-wise execution, for the length of a micro-step (see MicroStep).
    // the rank's communication stream: blocks' gathers and gradient reductions
    private readonly CommStream? _stream;
    private readonly int _blocks;                           // blocks of the layered model (0 in whole-model execution)
    // per slot, its latest queued gather until a block has used it
    private (int Block, Task Task)?[] _slotGathers = [];
    // the root's gathered parameters for the micro-step (until parked)
    private Tensor? _rootFull;
    private Tensor? _rootGradient;                          // g ≠ N: the root's gradient buffer being written
    // layer-wise: the root was parked and its head gradient reduced (see SplitRoot)
    private bool _rootSplit;
    // layer-wise: the tied output's second leaf (ILayeredModule.TiedOutputAlias)
    private readonly Parameter? _tiedAlias;
    // the micro-step's dispose scope (what SplitRoot's observer inspects)
    private DisposeScope? _microStepScope;
    // p ≠ N: two buffers of the largest block (one without prefetch); block i's parameters point into slot i mod their
    // count
    private Tensor[]? _slots;
    // g ≠ N: the last block's gradient reduction, while in flight
    private (Task Task, long Bytes)? _reduction;
    private readonly List<BlockCall> _calls = [];           // the micro-step's block calls (with their recorded graphs)

    private ShardedTrainer(nn.Module model, ShardingPlan plan, Communicator world, AdamWOptions optimizer,
        IParameterSource? source)
    {
        _model = model;
        _plan = plan.Validate(world.Size);
        _world = world;
        var device = model.parameters().First().device;
        var dtype = plan.ComputeType;
        _fingerprint = ModelFingerprint(model);
        if (plan.Layerwise) _layered = LayeredModel(model);

        using var _ = no_grad();
        _elements = model.parameters().Sum(p => p.numel());
        // Identical on every rank: the module's own values, or the source's.
        using var initial = source is null ? TensorParameterSource.Values(model, device) : null;
        source ??= new TensorParameterSource(initial!);
        if (source.Count != _elements)
            throw new ArgumentException(
                $"The initial values hold {source.Count:N0} parameters; the model has {_elements:N0}.", nameof(source));
        // Module.to(dtype) replaces the parameter objects, so the layout is taken afterwards. Placeholder parameters
        // (a loader's) are made in the compute dtype: converting one would allocate it whole.
        if (plan.Precision == ParoPrecision.Bf16 && model.parameters().Any(p => p.dtype != dtype)) model.to(dtype);
        var modelOffsets = new Dictionary<Parameter, long>(ReferenceEqualityComparer.Instance);
        long offset = 0;
        foreach (var p in model.parameters())
        {
            modelOffsets[p] = offset;
            offset += p.numel();
        }
        ShardUnit Unit(IReadOnlyList<Parameter> parameters, bool whole)
        {
            var members = parameters.Select(p => (p, modelOffsets[p])).ToList();
            // the whole model keeps its padding in the checkpoint, as before units existed
            var runs = whole ? [(0L, 0L, long.MaxValue)] : Runs(members);
            return new ShardUnit(members, source, runs, plan, world, dtype, device, optimizer);
        }
        if (_layered is null)
        {
            _root = Unit([.. model.parameters()], whole: true);
            _units.Add(_root);
        }
        else
        {
            var blockParameters = _layered.Blocks.Select(b => b.parameters().ToList()).ToList();
            var inBlocks = blockParameters.SelectMany(b => b).ToHashSet(ReferenceEqualityComparer.Instance);
            _root = Unit([.. model.parameters().Where(p => !inBlocks.Contains(p))], whole: false);
            _units.Add(_root);
            foreach (var parameters in blockParameters) _units.Add(Unit(parameters, whole: false));
            if (_layered.TiedOutput is { } name && model.named_parameters().FirstOrDefault(np
                => np.name == name).parameter is { } tied && !inBlocks.Contains(tied))
            {
                _tiedAlias = new Parameter(empty(0, dtype: dtype,
                    device: device)).DetachFromDisposeScope() as Parameter;
                _root.AddAlias(tied, _tiedAlias!);
            }
            _blocks = blockParameters.Count;
            _stream = new CommStream($"paro-comm-rank{world.Rank}");
        }
        foreach (var unit in _units) unit.Release();
    }

    /// <summary>The strategy being trained.</summary>
    public ShardingStrategy Strategy => _plan.Strategy;

    /// <summary>The plan (strategy, m, A, precision, layer-wise or not).</summary>
    public ShardingPlan Plan => _plan;

    /// <summary>AdamW's hyper-parameters; set between steps to change them (e.g. after a warm start), keeping the
    /// moments.</summary>
    public AdamWOptions Optimizer
    {
        get => _root.Optimizer.Options;
        set { foreach (var unit in _units) unit.Optimizer.Options = value; }
    }

    /// <summary>Starts a new phase with fresh AdamW state: moments zeroed, step count 0, new hyper-parameters (the
    /// parameters stay).</summary>
    public void ResetOptimizer(AdamWOptions options)
    {
        foreach (var unit in _units)
        {
            unit.Optimizer.Options = options;
            unit.Optimizer.Reset();
        }
    }

    /// <summary>Optimizer steps taken.</summary>
    public long StepsTaken => _root.Optimizer.Step;

    /// <summary>Number of model parameters (Ψ), before padding.</summary>
    public long ParameterCount => _elements;

    /// <summary>Flat buffer length after padding to a multiple of the rank count (summed over the blocks' buffers in
    /// layer-wise execution, each padded on its own).</summary>
    public long PaddedParameterCount => _units.Sum(u => u.Groups.Padded);

    /// <summary>Layer-wise execution: the padded length of the root buffer (every parameter outside the blocks),
    /// gathered once per micro-step; 0 for whole-model execution.</summary>
    public long PaddedRootCount => _layered is null ? 0 : _root.Groups.Padded;

    /// <summary>
    /// Wraps <paramref name="model"/> (all of whose parameters are trained) for sharded training over
    /// <paramref name="world"/>. Its initial values are its own parameters (identical on every rank), or those of
    /// <paramref name="initial"/>, of which each rank reads only the slices it keeps: then the model's parameters may
    /// be placeholders that only carry shapes (<see cref="Decoder.Placeholder"/>), in the plan's compute dtype.
    /// </summary>
    /// <exception cref="ShardingPlanException">The strategy is ineffective.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The group size does not divide the rank count, or A &lt;
    /// 1.</exception>
    /// <exception cref="ArgumentException">The plan is layer-wise and the model does not expose its blocks, or the
    /// initial values are not the model's size.</exception>
    public static ShardedTrainer Create(nn.Module model, ShardingPlan plan, Communicator world,
        AdamWOptions? optimizer = null, IParameterSource? initial = null) =>
        new(model, plan, world, (optimizer ?? new AdamWOptions()).Validate(), initial);


    /// <summary>
    /// One optimizer step over the micro-batches (A = <c>microBatches.Count</c>, which must equal the plan's
    /// accumulation). Each function runs the model on one micro-batch and returns its mean loss; the step minimises the
    /// mean over all ranks' micro-batches. In layer-wise execution every rank must run the model the same number of
    /// times per micro-batch (each block's gather is a collective).
    /// </summary>
    /// <returns>This rank's mean loss over its micro-batches.</returns>
    public double Step(IReadOnlyList<Func<nn.Module, Tensor>> microBatches)
    {
        if (microBatches.Count != _plan.Accumulation)
            throw new ArgumentException(
                $"The plan accumulates {_plan.Accumulation} micro-batches per step; {microBatches.Count} were given.",
                    nameof(microBatches));
        double lossSum = 0;
        try
        {
            foreach (var microBatch in microBatches) lossSum += MicroStep(microBatch);
        }
        catch
        {
            // The step is abandoned: the stream finishes what it was given (every rank gave the same), nothing stays
            // attached, the partial gradients go, the accounting restarts.
            if (_layered is not null) FinishBlocks(abandoned: true);
            _rootGradient?.Dispose();
            (_rootGradient, _rootFull, _rootSplit) = (null, null, false);
            using (no_grad())
                foreach (var unit in _units)
                {
                    unit.Release();
                    unit.Gradients.zero_();
                }
            _transientBytes = 0;
            throw;
        }
        FinishStep();
        return lossSum / microBatches.Count;
    }

    /// <summary>Bytes this rank holds for each component, measured from its buffers.</summary>
    public ParoMemory Memory
    {
        get
        {
            long parameters = 0, gradients = 0, optimizer = 0;
            foreach (var unit in _units)
            {
                unit.StateBytes(out var p, out var g, out var o);
                (parameters, gradients, optimizer) = (parameters + p, gradients + g, optimizer + o);
            }
            return new(parameters, gradients, optimizer, _peakTransientBytes);
        }
    }

    /// <summary>Collective: every rank returns the full fp32 parameter vector (Ψ elements, module order).</summary>
    public float[] GatherParameters()
    {
        using var _ = no_grad();
        using var values = zeros(_elements, dtype: ScalarType.Float32, device: _root.Parameters.device);
        foreach (var unit in _units) unit.GatherInto(values);
        using var host = values.cpu();
        return host.data<float>().ToArray();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _stream?.Dispose();
        foreach (var unit in _units) unit.Dispose();
        _tiedAlias?.Dispose();
    }

    /// <summary>
    /// One micro-step: gather the root (the whole model, in whole-model execution) and keep it through backward, then
    /// reduce its gradient. In layer-wise execution each block runs as a <see cref="ShardedBlock"/> (see
    /// <see cref="BlockCall"/>).
    /// </summary>
    private double MicroStep(Func<nn.Module, Tensor> microBatch)
    {
        using var scope = _microStepScope = NewDisposeScope();
        var full = _rootFull = Gather(_root);
        _root.Attach(full);
        _rootGradient = GradientTarget(_root);
        _rootSplit = false;
        if (_layered is not null) StartBlocks(_layered);
        Tensor loss;
        try
        {
            loss = microBatch(_model);
            loss.backward();
        }
        finally
        {
            if (_layered is not null) (_layered.BlockRunner, _layered.TiedOutputAlias) = (null, null);
        }
        if (_layered is not null) FinishBlocks(abandoned: false);
        if (_rootSplit) _root.Release();
        else Drop(_root, full);
        _rootFull = null;
        ReduceGradients(_root, _rootGradient);
        _rootGradient = null;
        return loss.to(ScalarType.Float32).item<float>();
    }

    /// <summary>Gathers a unit's parameters; a gathered copy counts as transient memory until
    /// <see cref="Drop"/>.</summary>
    private Tensor Gather(ShardUnit unit)
    {
        var full = unit.GatherFull(out var gathered);
        if (gathered) Allocate(unit.FullBytes);
        return full;
    }

    private void Drop(ShardUnit unit, Tensor full)
    {
        unit.Release();
        if (Strategy.Parameters != ShardLevel.None) Free(unit.FullBytes);
        full.Dispose();
    }

    /// <summary>
    /// Where autograd writes a unit's gradients: the accumulator itself when gradients are not sharded (g = N: the sum
    /// over micro-steps builds up in place), else a transient full buffer that <see cref="ReduceGradients"/> reduces.
    /// </summary>
    private Tensor? GradientTarget(ShardUnit unit)
    {
        if (Strategy.Gradients == ShardLevel.None)
        {
            unit.AttachGradients(unit.Gradients);
            return null;
        }
        var gradient = unit.NewFullBuffer();
        Allocate(unit.FullBytes);
        unit.AttachGradients(gradient);
        return gradient;
    }

    /// <summary>After the unit's backward (and its release): reduce the micro-step's gradient to level g and free
    /// it.</summary>
    private void ReduceGradients(ShardUnit unit, Tensor? gradient)
    {
        if (gradient is null) return;
        unit.ReduceMicroStepGradient(gradient);
        Free(unit.FullBytes);
        gradient.Dispose();
    }

    private void Allocate(long bytes)
    {
        _transientBytes += bytes;
        _peakTransientBytes = Math.Max(_peakTransientBytes, _transientBytes);
    }

    private void Free(long bytes) => _transientBytes -= bytes;

    private static ILayeredModule LayeredModel(nn.Module model)
    {
        if (model is not ILayeredModule layered)
            throw new ArgumentException(
                $"Layer-wise execution needs a model that exposes its blocks ({nameof(ILayeredModule)}, as the " +
                    $"toolkit's GPT does); {model.GetType().Name} does not. Train it with whole-model gathering.",
                        nameof(model));
        return layered;
    }

    /// <summary>(unit offset, model offset, count) runs of consecutive parameters.</summary>
    private static List<(long UnitOffset, long ModelOffset, long Count)> Runs(IReadOnlyList<(Parameter Parameter,
        long ModelOffset)> members)
    {
        var runs = new List<(long UnitOffset, long ModelOffset, long Count)>();
        long unitOffset = 0;
        foreach (var (p, modelOffset) in members)
        {
            if (runs.Count > 0 && runs[^1].ModelOffset + runs[^1].Count == modelOffset)
                runs[^1] = (runs[^1].UnitOffset, runs[^1].ModelOffset, runs[^1].Count + p.numel());
            else
                runs.Add((unitOffset, modelOffset, p.numel()));
            unitOffset += p.numel();
        }
        return runs;
    }
}
