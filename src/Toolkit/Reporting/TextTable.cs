using System.Text;

namespace Toolkit.Reporting;

/// <summary>
/// A result that is rows: one description that every front end renders (the console as aligned text, the notebook
/// and the HTML report as a table), so they cannot drift apart.
/// </summary>
/// <param name="Title">What the table shows.</param>
/// <param name="Columns">Column headings, with units.</param>
/// <param name="Rows">The cells, as text, one list per row.</param>
/// <param name="Notes">Lines shown under the table.</param>
public sealed record TextTable(string Title, IReadOnlyList<string> Columns, IReadOnlyList<IReadOnlyList<string>> Rows,
    IReadOnlyList<string> Notes)
{
    /// <summary>The table as aligned text: the first column left-aligned, the others right-aligned.</summary>
    public string ToText()
    {
        var widths = Columns.Select((c, k) => Rows.Select(r => r[k].Length).Append(c.Length).Max()).ToList();
        string Line(IReadOnlyList<string> cells) => string.Join("  ",
            cells.Select((cell, k) => k == 0 ? cell.PadRight(widths[k]) : cell.PadLeft(widths[k]))).TrimEnd();
        var text = new StringBuilder().AppendLine(Title).AppendLine(Line(Columns));
        foreach (var row in Rows) text.AppendLine(Line(row));
        foreach (var note in Notes) text.AppendLine(note);
        return text.ToString();
    }
}
