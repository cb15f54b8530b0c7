using Toolkit.Checkpoints;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// A toolkit checkpoint's parameters as a model's initial values (the fp32 master copy of a mixed-precision checkpoint,
/// else the parameters), read by range from the rank files that hold it.
/// </summary>
internal sealed class CheckpointParameterSource : IParameterSource
{
    private readonly CheckpointReader _reader;
    private readonly string _component;

    /// <summary>Reads the checkpoint in <paramref name="directory"/>.</summary>
    public CheckpointParameterSource(string directory)
    {
        var manifest = CheckpointManifest.Read(directory);
        _reader = new CheckpointReader(directory, manifest);
        _component = _reader.Has("master") ? "master" : "parameters";
        Count = manifest.Parameters;
    }

    /// <inheritdoc/>
    public long Count { get; }

    /// <inheritdoc/>
    public void Fill(long offset, Tensor destination)
    {
        if (destination.dtype == ScalarType.Float32)
        {
            _reader.Fill(_component, offset, destination);
            return;
        }
        using var values = zeros(destination.numel(), dtype: ScalarType.Float32);
        _reader.Fill(_component, offset, values);
        using var _ = no_grad();
        destination.copy_(values);
    }
}
