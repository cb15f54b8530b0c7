using System.Collections;
using Microsoft.DotNet.Interactive.Formatting;
using Toolkit.Reporting;

namespace Toolkit.Interactive;

/// <summary>
/// Results display as tables with named columns, not as lists of collapsed objects: a <see cref="TextTable"/>, any
/// result that describes itself as facts (a job's result), and any sequence of the toolkit's own row types (plans,
/// steps, quarantined records...). For rows of other types (anonymous ones included) notebooks call
/// <see cref="Tables.ToTable"/>.
/// </summary>
internal static class ResultFormatters
{
    /// <summary>Registers the formatters (idempotent: a later registration replaces an earlier one).</summary>
    public static void Register()
    {
        Formatter.Register<TextTable>((table, writer) => writer.Write(Html.Table(table)), HtmlFormatter.MimeType);
        Formatter.Register<IFacts>((result, writer) => writer.Write(Html.Table(result)), HtmlFormatter.MimeType);
        var exported = typeof(TextTable).Assembly.GetExportedTypes();
        foreach (var result in exported.Where(t => typeof(IFacts).IsAssignableFrom(t)))
            Formatter.Register(typeof(IEnumerable<>).MakeGenericType(result), (value, writer) =>
            {
                foreach (var item in (IEnumerable)value) writer.Write(Html.Table((IFacts)item));
            }, HtmlFormatter.MimeType);
        var toTable = typeof(Tables).GetMethod(nameof(Tables.ToTable))!;
        foreach (var row in RowTypes(exported))
        {
            var method = toTable.MakeGenericMethod(row);
            Formatter.Register(typeof(IEnumerable<>).MakeGenericType(row), (value, writer) =>
                writer.Write(Html.Table((TextTable)method.Invoke(null, [value, "", 200])!)), HtmlFormatter.MimeType);
            Formatter.Register(row, (value, writer) => writer.Write(Html.Table(row.Name, Properties(value))),
                HtmlFormatter.MimeType);
        }
    }

    /// <summary>One row: a property and its value per line.</summary>
    private static IEnumerable<(string, string)> Properties(object value) =>
        Tables.Columns(value.GetType()).Select(p => (p.Name, Tables.Value(p, value)));

    /// <summary>The toolkit's public record types that are rows: records (values, not services such as an engine or an
    /// open model) with readable properties that are not collections or results with facts.</summary>
    internal static IEnumerable<Type> RowTypes(IEnumerable<Type> exported) => exported.Where(t =>
        t.IsClass && !t.IsAbstract && !t.IsGenericTypeDefinition && t.GetMethod("<Clone>$") is not null &&
        !typeof(IEnumerable).IsAssignableFrom(t) && !typeof(IFacts).IsAssignableFrom(t) && !t.IsNested &&
        t != typeof(TextTable) && Tables.Columns(t).Count > 0);
}
