using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// A model's initial parameter values in its flat order (parameters in module order, each row-major), read by element
/// range: what a sharded trainer's rank reads to fill only the slices its strategy keeps.
/// </summary>
public interface IParameterSource
{
    /// <summary>Elements in the flat order.</summary>
    long Count { get; }

    /// <summary>Writes elements [<paramref name="offset"/>, offset + size) into <paramref name="destination"/>
    /// (contiguous, 1-D, any float dtype).</summary>
    void Fill(long offset, Tensor destination);
}

/// <summary>A flat tensor of every value, held whole (what a model built in this process gives).</summary>
internal sealed class TensorParameterSource(Tensor flat) : IParameterSource
{
    public long Count => flat.numel();

    /// <summary>A module's own parameter values, flat in fp32 on <paramref name="device"/>.</summary>
    public static Tensor Values(TorchSharp.torch.nn.Module model, Device device)
    {
        using var _ = no_grad();
        var values = zeros(model.parameters().Sum(p => p.numel()), dtype: ScalarType.Float32, device: device);
        long offset = 0;
        foreach (var p in model.parameters())
        {
            using var scope = NewDisposeScope();   // holds the temporaries while libtorch reads them
            var part = values.narrow(0, offset, p.numel());
            part.copy_(p.detach().flatten());
            offset += p.numel();
        }
        return values;
    }

    public void Fill(long offset, Tensor destination)
    {
        using var _ = no_grad();
        using var part = flat.narrow(0, offset, destination.numel());
        destination.copy_(part);
    }
}

/// <summary>A Hugging Face folder's weights, read parameter by parameter (and only the requested elements of
/// each).</summary>
internal sealed class FolderParameterSource(HfModel model) : IParameterSource
{
    /// <inheritdoc/>
    public long Count => ModelLayout.Count(model.Config);

    /// <inheritdoc/>
    public void Fill(long offset, Tensor destination)
    {
        var end = offset + destination.numel();
        using var scope = NewDisposeScope();
        foreach (var (name, _, start, count) in ModelLayout.Flat(model.Config))
        {
            var (from, to) = (Math.Max(offset, start), Math.Min(end, start + count));
            if (from >= to) continue;
            model.ReadParameterElements(name, from - start, destination.narrow(0, from - offset, to - from));
        }
    }
}
