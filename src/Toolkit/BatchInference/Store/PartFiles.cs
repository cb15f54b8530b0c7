namespace Toolkit.BatchInference;

/// <summary>What the coordinator reads of a part file to check a commit.</summary>
internal static class PartFiles
{
    /// <summary>The records in a part (JSONL lines, or the rows a Parquet footer declares); null when it does not
    /// exist.</summary>
    public static long? CountRows(string part)
    {
        if (!File.Exists(part)) return null;
        using var file = File.OpenRead(part);
        if (InferLayout.IsParquet(part))
        {
            var reader = Parquet.ParquetReader.CreateAsync(file).GetAwaiter().GetResult();
            try { return reader.Metadata?.NumRows ?? 0; }
            finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        long lines = 0;
        Span<byte> buffer = stackalloc byte[1 << 14];
        for (int read; (read = file.Read(buffer)) > 0;) lines += buffer[..read].Count((byte)'\n');
        return lines;
    }
}
