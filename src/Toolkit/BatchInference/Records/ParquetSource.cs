using System.Globalization;
using System.Text.Json;
using Parquet;
using Parquet.Serialization;

namespace Toolkit.BatchInference;

/// <summary>
/// Apache Parquet input: record i is row i over the row groups in order. The id column may hold strings or integers,
/// the text column strings; a null or missing value makes that row a malformed record (quarantined with its reason). A
/// shard is read from the row groups it overlaps; the last row group read is kept, so consecutive shards inside one row
/// group decode it once.
/// </summary>
internal sealed class ParquetSource : RecordSource
{
    private readonly string _idField, _textField;
    private readonly long[] _starts;                     // first record of each row group, then Count
    private (int Group, IList<Dictionary<string, object>> Rows)? _cached;
    private readonly Lock _gate = new();

    /// <summary>Reads <paramref name="path"/>'s schema and row-group sizes.</summary>
    /// <exception cref="InvalidDataException">Not a Parquet file, or it lacks the id or text column.</exception>
    public ParquetSource(string path, string idField, string textField, IReadOnlyList<string>? keep = null) : base(path)
    {
        (_idField, _textField, Keep) = (idField, textField, keep ?? []);
        try
        {
            var reader = ParquetReader.CreateAsync(Path).GetAwaiter().GetResult();
            try
            {
                var columns = reader.Schema.GetDataFields().Select(f => f.Name).ToList();
                foreach (var (field, option) in new[] { (idField, "--id-field"), (textField, "--text-field") }
                    .Concat(Keep.Select(k => (k, "--keep-columns"))))
                    if (!columns.Contains(field))
                        throw new InvalidDataException(
                            $"{Path} has no column '{field}' ({option}); its columns are {string.Join(", ", columns)}");
                _starts = new long[reader.RowGroupCount + 1];
                for (var g = 0; g < reader.RowGroupCount; g++)
                {
                    using var group = reader.OpenRowGroupReader(g);
                    _starts[g + 1] = _starts[g] + group.RowCount;
                }
                Count = _starts[^1];
            }
            finally
            {
                reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }
        catch (Exception e) when (
            e is not InvalidDataException and not FileNotFoundException and not UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{Path} is not a readable Parquet file: {e.Message}", e);
        }
    }

    private protected override IEnumerable<InputRecord> ReadRange(long first, long count)
    {
        var end = first + count;
        var group = Array.BinarySearch(_starts, first) is var i && i >= 0 ? i : ~i - 1;
        for (var index = first; index < end; group++)
        {
            var rows = RowGroup(group);
            for (; index < end && index < _starts[group + 1]; index++)
                yield return Parse(index, rows[(int)(index - _starts[group])]);
        }
    }

    private IList<Dictionary<string, object>> RowGroup(int group)
    {
        lock (_gate)
        {
            if (_cached is { } c && c.Group == group) return c.Rows;
            using var file = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
            var rows = ParquetSerializer.DeserializeUntypedAsync(file,
                rowGroupIndex: group).GetAwaiter().GetResult().Data;
            if (rows.Count != _starts[group
                + 1] - _starts[group]) throw new InvalidDataException(
                    $"{Path} changed while the job ran: row group {group} has {rows.Count} rows");
            _cached = (group, rows);
            return rows;
        }
    }

    private InputRecord Parse(long index, Dictionary<string, object> row)
    {
        var id = row.GetValueOrDefault(_idField) switch
        {
            null => null,
            string s => s.Length == 0 ? null : s,
            IFormattable number and (int or long or short or sbyte or byte or ushort or uint or ulong)
                => number.ToString(null, CultureInfo.InvariantCulture),
            // pandas writes integer ids with gaps as doubles
            double d when d == Math.Floor(d) && Math.Abs(d) < 1e15 => ((long)d).ToString(CultureInfo.InvariantCulture),
            _ => null,
        };
        if (id is null)
            return new(index, null, null, row.GetValueOrDefault(_idField) is { } value
                ? $"'{_idField}' is a {value.GetType().Name} ({value}); ids are non-empty strings or whole numbers"
                : $"no '{_idField}' (a non-empty string or an integer)");
        var numeric = row[_idField] is not string;
        return row.GetValueOrDefault(_textField) is string text
            ? Carry(new(index, id, text, null) { NumericId = numeric },
                name => row.GetValueOrDefault(name) is { } v ? JsonSerializer.SerializeToElement(v) : null)
            : new(index, id, null, $"no '{_textField}' string") { NumericId = numeric };
    }
}
