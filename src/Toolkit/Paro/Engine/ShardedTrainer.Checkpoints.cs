using Toolkit.Checkpoints;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// Checkpoints: each rank writes its slices in the model's flat order, so a checkpoint resumes under any plan.
/// </summary>
public sealed partial class ShardedTrainer
{
    /// <summary>
    /// Collective: writes this rank's slices to <paramref name="directory"/> (<c>rank-R.bin</c>) and, on rank 0, the
    /// manifest. Call between steps (gradients are then zero and not saved).
    /// </summary>
    public void SaveCheckpoint(string directory)
    {
        Directory.CreateDirectory(directory);
        var file = $"rank-{_world.Rank}.bin";
        var pieces = CheckpointPieces().ToList();
        var sha = CheckpointFiles.Write(Path.Combine(directory, file), pieces.Select(c => c.Tensor));
        var shard = new CheckpointShard(_world.Rank, file, sha, [.. pieces.Select(c => c.Component)]);
        // Every rank's entry reaches rank 0 through the file system after a barrier (no counted traffic).
        Runtime.ToolkitJson.Write(Path.Combine(directory, file + ".json"), shard);
        _world.Barrier();
        if (_world.Rank == 0)
        {
            string EntryOf(int rank) => Path.Combine(directory, $"rank-{rank}.bin.json");
            var shards = Enumerable.Range(0, _world.Size)
                .Select(r => Runtime.ToolkitJson.Read<CheckpointShard>(EntryOf(r))).ToList();
            var manifest = new CheckpointManifest(1, Strategy.Code, _world.Size, _plan.GroupSize,
                _plan.Precision.ToString().ToLowerInvariant(), _elements, PaddedParameterCount, StepsTaken, shards)
            {
                ModelFingerprint = _fingerprint,
            };
            Runtime.ToolkitJson.Write(Path.Combine(directory, CheckpointManifest.FileName), manifest);
            foreach (var r in Enumerable.Range(0, _world.Size)) File.Delete(EntryOf(r));
        }
        _world.Barrier();
    }

    /// <summary>
    /// Restores this rank's slices and the optimizer step from a checkpoint written under any plan: another strategy,
    /// rank count, group size, precision, or layer-wise or whole-model execution (re-sharding is a re-slicing of the
    /// model's flat order, see <see cref="CheckpointReader"/>). Reads only the rank files that hold this rank's ranges;
    /// no communication.
    /// </summary>
    /// <remarks>Across precisions: fp32 parameters come from a bf16 checkpoint's fp32 master copy, and a bf16 run's
    /// master copy from an fp32 checkpoint's parameters.</remarks>
    /// <exception cref="ArgumentException">The checkpoint was written for another model (parameter count, or names and
    /// shapes).</exception>
    /// <exception cref="InvalidDataException">A file is missing, corrupt or truncated, or the manifest's format is
    /// unknown.</exception>
    public void LoadCheckpoint(string directory)
    {
        var manifest = CheckpointManifest.Read(directory);
        if (manifest.Format != 1) throw new InvalidDataException(
            $"Checkpoint {directory} has format {manifest.Format}; this toolkit reads format 1.");
        if (manifest.Parameters != _elements)
            throw new ArgumentException(
                $"Checkpoint {directory} holds a model of {manifest.Parameters:N0} parameters; this job's model " +
                $"has {_elements:N0}. Resume with the same model settings (--model and its sizes).");
        if (manifest.ModelFingerprint is { } fingerprint && fingerprint != _fingerprint)
            throw new ArgumentException(
                $"Checkpoint {directory} was written for another model of the same size (its parameters' names and " +
                $"shapes differ: fingerprint {fingerprint}, this job's {_fingerprint}). Resume with the same " +
                "model settings (--model and its sizes).");
        var reader = new CheckpointReader(directory, manifest);
        var hasMaster = _root.HasMaster;
        foreach (var (tensor, component) in CheckpointPieces())
        {
            var source = component.Name switch
            {
                // fp32 run from a bf16 checkpoint: the fp32 values
                "parameters" when !hasMaster && reader.Has("master") => "master",
                // bf16 run from an fp32 checkpoint
                "master" when !reader.Has("master") => "parameters",
                var name => name,
            };
            reader.Fill(source, component.Offset, tensor);
        }
        foreach (var unit in _units) unit.Optimizer.SetStep(manifest.Step);
    }

    private IEnumerable<(Tensor Tensor, CheckpointComponent Component)> CheckpointPieces() =>
        _units.SelectMany(u => u.CheckpointPieces());

    /// <summary>
    /// A hash of the parameters' names and shapes in module order: what a checkpoint must match beyond its parameter
    /// count.
    /// </summary>
    private static string ModelFingerprint(nn.Module model)
    {
        var text = string.Join(";",
            model.named_parameters().Select(np => $"{np.name}:{string.Join("x", np.parameter.shape)}"));
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text));
        return Convert.ToHexString(hash)[..16].ToLowerInvariant();
    }
}
