using Toolkit.Comm;
using Toolkit.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// Layer-wise execution: the blocks' slots, their gathers and reductions on the communication stream, the root's split.
/// </summary>
public sealed partial class ShardedTrainer
{
    /// <summary>
    /// Layer-wise, when the blocks' backward starts (the last block's, which runs first): the head's backward is done
    /// (autograd runs the nodes created after the blocks, and every gradient accumulation, before the blocks'), so the
    /// root's gathered parameters are parked (p ≠ N) and the gradient it has so far (the tied head's, through its own
    /// leaf, and the final norm's) is queued for reduction (g ≠ N); <see cref="RootGradientForEmbeddings"/> gives the
    /// embeddings' backward a fresh buffer after the blocks. The root is then not held across the blocks' backward,
    /// which is where the peak is: what still reads it has run (the head's and the norm's backward, whose saved tensors
    /// autograd has freed; an embedding's backward keeps the indices, not the weight). Only when the micro-batch ran
    /// the model once: a second forward's head may still need the root.
    /// </summary>
    private void SplitRoot()
    {
        if (_rootSplit || _calls.Count != _blocks) return;
        _rootSplit = true;
        var observe = RootSplitObserver is not null;
        // storages the observer checks nothing still points into (CPU)
        var released = new List<IntPtr>();
        if (Strategy.Parameters != ShardLevel.None)
        {
            if (observe && _rootFull!.device_type == DeviceType.CPU) released.Add(StorageAddress(_rootFull));
            _root.Park();
            Free(_root.FullBytes);
            _rootFull!.Dispose();
            _rootFull = null;
        }
        // the stream's reduction disposes it
        var gradient = _rootGradient?.DetachFromDisposeScope();
        _rootGradient = null;
        if (gradient is not null)
        {
            if (observe && gradient.device_type == DeviceType.CPU) released.Add(StorageAddress(gradient));
            _root.DetachGradients();
        }
        try
        {
            if (observe)
                RootSplitObserver!(gradient, _microStepScope!.DisposablesView.OfType<Tensor>().Count(t =>
                    !t.IsInvalid && t.device_type == DeviceType.CPU && t.numel() > 0 &&
                    released.Contains(StorageAddress(t))));
        }
        finally
        {
            if (gradient is not null) QueueReduction(_root, gradient);
        }
    }

    /// <summary>Where a CPU tensor's storage starts: the same for a buffer and every view of it.</summary>
    private static unsafe IntPtr StorageAddress(Tensor t)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        // the storage's first element, whatever t's offset and strides
        var first = t.as_strided([1], [1], 0);
        fixed (byte* address = first.bytes) return (IntPtr)address;
    }

    /// <summary>
    /// Tests: called when the root is split (<see cref="SplitRoot"/>) with the root's gradient buffer as autograd has
    /// written it so far (before its reduction; null when g = N) and the number of live tensors of the micro-step's
    /// dispose scope that still point into the root's released buffers (gathered parameters, gradient), which would
    /// keep them allocated.
    /// </summary>
    internal Action<Tensor?, int>? RootSplitObserver { get; set; }

    /// <summary>
    /// After the blocks' backward of a split root (the first block's, which runs last; g ≠ N): the embeddings'
    /// gradient goes into a fresh root buffer, reduced at the micro-step's end. A root parameter that received a
    /// gradient since the split (a model whose root is read after the blocks by something other than its tied output,
    /// or an autograd order other than libtorch's) would lose it here, so that is an error rather than a silent
    /// overwrite.
    /// </summary>
    private void RootGradientForEmbeddings()
    {
        if (!_rootSplit || Strategy.Gradients == ShardLevel.None || _rootGradient is not null) return;
        if (_root.HasGradients())
            throw new InvalidOperationException(
                "Layer-wise execution released the root (the parameters outside the blocks) when the blocks' " +
                "backward started, but a root parameter received a gradient during the blocks' backward, which " +
                "would be lost. A parameter read both before and after the blocks must be the model's declared tied " +
                "output (ILayeredModule.TiedOutput); train this model with whole-model gathering.");
        _rootGradient = GradientTarget(_root)!.DetachFromDisposeScope();
    }

    private long SlotElements => _units.Skip(1).Max(u => u.Groups.Padded);

    private long SlotBytes => SlotElements * _root.ElementSize;

    /// <summary>
    /// Layer-wise: points every block's parameters where they will be (p = N: its own parameters; else slot i mod 2 of
    /// two buffers of the largest block, which the blocks' gathers overwrite in turn; one buffer when
    /// <see cref="ShardingPlan.Prefetch"/> is off) and routes the blocks through the trainer. The parameters are not
    /// re-pointed until the micro-step ends: a recorded graph holds them (and views of them), so they must keep their
    /// storage and version; a gather writes through the slot's own tensor instead.
    /// </summary>
    private void StartBlocks(ILayeredModule layered)
    {
        if (Strategy.Parameters != ShardLevel.None)
        {
            var slots = new Tensor[_plan.Prefetch ? 2 : 1];
            for (var s = 0; s < slots.Length; s++)
                slots[s] = _root.NewFullBuffer(SlotElements).DetachFromDisposeScope();
            _slots = slots;
            _slotGathers = new (int, Task)?[slots.Length];
            Allocate(slots.Length * SlotBytes);
        }
        for (var i = 0; i < _blocks; i++)
        {
            var unit = _units[i + 1];
            unit.Attach(_slots is null ? unit.Parameters : _slots[i % _slots.Length]);
        }
        layered.TiedOutputAlias = _tiedAlias;
        layered.BlockRunner = (i, x) =>
        {
            var call = new BlockCall(this, i, _units[i + 1], layered.Blocks[i]);
            _calls.Add(call);
            return ShardedBlock.apply(x, call);
        };
    }

    /// <summary>Layer-wise, at the end of a micro-step (or of an abandoned step): waits for the stream, then releases
    /// the blocks, the slots and the recorded graphs.</summary>
    private void FinishBlocks(bool abandoned)
    {
        _stream!.Drain(rethrow: !abandoned);
        if (_reduction is { } reduction) Free(reduction.Bytes);
        _reduction = null;
        foreach (var unit in _units.Skip(1)) unit.Release();
        if (_slots is not null)
        {
            foreach (var slot in _slots) slot.Dispose();
            Free(_slots.Length * SlotBytes);
            _slots = null;
        }
        foreach (var call in _calls) call.Dispose();
        _calls.Clear();
    }

    /// <summary>
    /// Queues block <paramref name="i"/>'s gather into its slot, unless the slot's latest queued gather is this block's
    /// and no block has used it yet (a forward run twice per micro-batch, or a block whose output goes unused, would
    /// otherwise find a gather that another block's has overwritten). p = N gathers nothing.
    /// </summary>
    private Task QueueGather(int i)
    {
        if (_slots is null) return Task.CompletedTask;
        var s = i % _slots.Length;
        if (_slotGathers[s] is { } queued && queued.Block == i) return queued.Task;
        var (unit, slot) = (_units[i + 1], _slots[s]);
        var task = _stream!.Enqueue(() => unit.AllGatherInto(slot));
        _slotGathers[s] = (i, task);
        return task;
    }

    /// <summary>Waits until block <paramref name="i"/>'s parameters are in its slot (queuing the gather if nothing
    /// did); the gather is then used, and the block's next run gathers again.</summary>
    private void AwaitGather(int i)
    {
        QueueGather(i).GetAwaiter().GetResult();
        if (_slots is not null) _slotGathers[i % _slots.Length] = null;
    }

    /// <summary>
    /// Queues the reduction of a block's gradient (g ≠ N) after waiting for the previous block's: at most two blocks'
    /// gradient buffers exist, the one being reduced and the one backward writes.
    /// </summary>
    private void QueueReduction(ShardUnit unit, Tensor? gradient)
    {
        if (gradient is null) return;
        if (_reduction is { } previous)
        {
            previous.Task.GetAwaiter().GetResult();
            Free(previous.Bytes);
        }
        _reduction = (_stream!.Enqueue(() =>
        {
            using (gradient) unit.ReduceMicroStepGradient(gradient);
        }), unit.FullBytes);
    }

    /// <summary>
    /// One call of one block in a layer-wise micro-step (FSDP's schedule, on the rank's <see cref="CommStream"/>):
    /// <list type="bullet">
    /// <item>forward: wait for the block's gather, queue the next block's (prefetch: it runs while this block
    /// computes),
    /// run the block recording its graph (or, with <see cref="ShardingPlan.Recompute"/>, without), and after the last
    /// block queue its gather again for backward;</item>
    /// <item>backward: wait for the block's gather (again: its slot has held another block since), queue the previous
    /// block's, back-propagate through the recorded graph (or recompute the forward, recorded, first), then queue the
    /// reduction of its gradient to level g, which runs while the previous block's backward computes.</item>
    /// </list>
    /// Without <see cref="ShardingPlan.Prefetch"/> nothing is queued ahead: every gather is queued when it is awaited,
    /// and
    /// all blocks share one slot.
    /// The graph holds views of the block's parameters, which point into its slot, so re-gathering into the slot
    /// restores what backward reads; the values are the same as in forward (parameters change only at the optimizer
    /// step).
    /// </summary>
    private sealed class BlockCall(
        ShardedTrainer trainer, int index, ShardUnit unit, nn.Module<Tensor, Tensor> block) : IDisposable
    {
        private Tensor? _input, _output;      // the recorded graph's input (a leaf) and output

        private bool Last => index == trainer._blocks - 1;

        private bool Prefetch => trainer._plan.Prefetch;

        public Tensor Forward(Tensor x)
        {
            trainer.AwaitGather(index);
            if (!Last && Prefetch) trainer.QueueGather(index + 1);
            // the block's own temporaries go now
            using var scope = NewDisposeScope();
            Tensor y;
            if (trainer._plan.Recompute)
            {
                using var _ = no_grad();
                y = block.call(x);
            }
            else
            {
                using var _ = enable_grad();
                _input = x.detach().requires_grad_().DetachFromDisposeScope();
                _output = block.call(_input).DetachFromDisposeScope();
                y = _output.detach();
            }
            // for backward, which starts with this block
            if (Last && Prefetch) trainer.QueueGather(index);
            return y.MoveToOuterDisposeScope();
        }

        public Tensor Backward(Tensor x, Tensor gradient)
        {
            if (Last) trainer.SplitRoot();
            trainer.AwaitGather(index);
            if (index > 0 && Prefetch) trainer.QueueGather(index - 1);
            using var scope = NewDisposeScope();
            // the stream's reduction disposes it
            var target = trainer.GradientTarget(unit)?.DetachFromDisposeScope();
            Tensor input;
            try
            {
                using var _ = enable_grad();
                if (_output is null)
                {
                    input = x.detach().requires_grad_();
                    autograd.backward([block.call(input)], [gradient]);               // the forward again, now recorded
                }
                else
                {
                    input = _input!;
                    autograd.backward([_output], [gradient]);
                }
            }
            catch
            {
                unit.DetachGradients();
                target?.Dispose();
                throw;
            }
            // the parameters' grad views would keep the buffer alive
            unit.DetachGradients();
            trainer.QueueReduction(unit, target);
            if (index == 0) trainer.RootGradientForEmbeddings();
            var result = input.grad!.MoveToOuterDisposeScope();
            Dispose();
            return result;
        }

        public void Dispose()
        {
            _input?.Dispose();
            _output?.Dispose();
            (_input, _output) = (null, null);
        }
    }

    /// <summary>One block as an autograd function: its parameters are gathered only around its forward and its
    /// backward.</summary>
    private sealed class ShardedBlock : autograd.SingleTensorFunction<ShardedBlock>
    {
        public override string Name => "ParoShardedBlock";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var x = (Tensor)vars[0];
            var call = (BlockCall)vars[1];
            ctx.save_for_backward([x]);
            ctx.save_data("call", call);
            return call.Forward(x);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            var x = ctx.get_saved_variables()[0];
            var call = (BlockCall)ctx.get_data("call");
            // one gradient per argument: the input's, none for the context
            return [call.Backward(x, grad_output), null!];
        }
    }
}
