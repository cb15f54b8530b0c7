using Toolkit.Checkpoints;

namespace Toolkit.Models;

/// <summary>
/// <c>toolkit model export</c>: a toolkit checkpoint (written under any strategy, rank count or precision) as a Hugging
/// Face folder, with the tensor names, shapes, config and tokenizer of the model it was trained from, read parameter by
/// parameter from the rank files (the model is never held whole).
/// </summary>
internal static class CheckpointExport
{
    /// <summary>Writes <paramref name="checkpoint"/>'s model to <paramref name="output"/>.</summary>
    /// <param name="checkpoint">A checkpoint folder (with its <c>model/</c> description).</param>
    /// <param name="output">The folder to write.</param>
    /// <param name="dtype">The stored dtype; null for the dtype of the model the training started from.</param>
    /// <param name="maxShardBytes">Largest weight file before the weights are sharded with an index.</param>
    /// <exception cref="InvalidDataException">The folder is not a checkpoint with a model description.</exception>
    /// <exception cref="ArgumentException">A mixture-of-experts GPT, which has no Hugging Face form.</exception>
    public static void ToFolder(string checkpoint, string output, string? dtype = null, long maxShardBytes = 4L << 30)
        => ToFolder(ModelSource.Resolve(checkpoint), output, dtype, maxShardBytes);

    /// <summary>Writes a resolved checkpoint's model to <paramref name="output"/> (see
    /// <see cref="ToFolder(string, string, string?, long)"/>).</summary>
    public static void ToFolder(ModelSource checkpoint, string output, string? dtype = null,
        long maxShardBytes = 4L << 30)
    {
        if (checkpoint.Kind != ModelSourceKind.Checkpoint) throw new ArgumentException(
            $"'{checkpoint.Text}' is not a checkpoint folder (it has no manifest.json)", "Checkpoint");
        HfExport.Write(output, checkpoint.Config, new CheckpointParameterSource(checkpoint.Folder!),
            dtype ?? checkpoint.DType, checkpoint.DescriptionSource, maxShardBytes);
    }
}

/// <summary>Options of <c>model export</c>: a checkpoint written as a Hugging Face folder.</summary>
public sealed record ModelExportOptions : Jobs.ICheckedOptions
{
    /// <summary>The checkpoint folder (<c>runs/&lt;id&gt;/checkpoints/step-K</c>).</summary>
    [Options.Option("The checkpoint folder to export (runs/<id>/checkpoints/step-K).")]
    public string? Checkpoint { get; init; }

    /// <summary>The folder to write.</summary>
    [Options.Option("The Hugging Face folder to write (created).")]
    public string? Out { get; init; }

    /// <summary>The stored dtype; none for the one the training started from.</summary>
    [Options.Option(
        "Stored dtype: float32, bfloat16 or float16 (none: the dtype of the model the training started from).")]
    public string? Dtype { get; init; }

    /// <summary>Largest weight file in GB before the weights are sharded. Default 4.</summary>
    [Options.Option(
        "Largest weight file in GB; bigger models are written in shards with model.safetensors.index.json.")]
    public double MaxShardGb { get; init; } = 4;

    /// <inheritdoc/>
    public void Check() => _ = Checked();

    /// <summary>Checks the options; returns the checkpoint's model.</summary>
    private ModelSource Checked()
    {
        if (string.IsNullOrWhiteSpace(Checkpoint)) throw new ArgumentException(
            "is required: the checkpoint folder to export", nameof(Checkpoint));
        if (string.IsNullOrWhiteSpace(Out)) throw new ArgumentException("is required: the folder to write",
            nameof(Out));
        if (File.Exists(Out)) throw new ArgumentOutOfRangeException(nameof(Out), Out, "is a file; give a folder");
        if (Dtype is not null && !HfConfig.DTypes.ContainsKey(Dtype))
            throw new ArgumentOutOfRangeException(nameof(Dtype), Dtype, HfConfig.DTypeRule);
        if (!(MaxShardGb > 0)) throw new ArgumentOutOfRangeException(nameof(MaxShardGb), MaxShardGb,
            "must be positive");
        if (!File.Exists(Path.Combine(Checkpoint, CheckpointManifest.FileName)))
            throw new ArgumentOutOfRangeException(nameof(Checkpoint), Checkpoint,
                $"is not a checkpoint folder (it has no {CheckpointManifest.FileName})");
        return ModelSource.Resolve(Checkpoint);                                     // its model description
    }

    /// <summary>Runs the export; returns the exported folder's model.</summary>
    public ModelSource Run()
    {
        CheckpointExport.ToFolder(Checked(), Out!, Dtype, (long)(MaxShardGb * (1L << 30)));
        return ModelSource.Resolve(Out!);
    }
}
