using System.Net;
using System.Text;

namespace Toolkit.Interactive;

internal static class Html
{
    /// <summary>A result's title and facts (the rows the console and the HTML report show too).</summary>
    public static string Table(Toolkit.Reporting.IFacts result) => Table(result.Title, result.Facts());

    public static string Table(string caption, IEnumerable<(string Name, string Value)> rows)
    {
        var html = new StringBuilder("<table><caption style=\"text-align:left;font-weight:bold\">").Append(
            WebUtility.HtmlEncode(caption)).Append("</caption>");
        foreach (var (name, value) in rows)
            html.Append("<tr><td style=\"text-align:left\">").Append(WebUtility.HtmlEncode(name)).Append(
                "</td><td style=\"text-align:left\">").Append(WebUtility.HtmlEncode(value)).Append("</td></tr>");
        return html.Append("</table>").ToString();
    }

    /// <summary>A table of rows (<see cref="Toolkit.Reporting.TextTable"/>): title, headings, cells, notes.</summary>
    public static string Table(Toolkit.Reporting.TextTable table)
    {
        static string E(string text) => WebUtility.HtmlEncode(text);
        var html = new StringBuilder("<table>");
        if (table.Title.Length > 0)
            html.Append("<caption style=\"text-align:left;font-weight:bold\">").Append(E(table.Title)).Append(
                "</caption>");
        html.Append("<tr>");
        foreach (var column in table.Columns) html.Append("<th>").Append(E(column)).Append("</th>");
        html.Append("</tr>");
        foreach (var row in table.Rows)
        {
            html.Append("<tr>");
            foreach (var cell in row) html.Append("<td>").Append(E(cell)).Append("</td>");
            html.Append("</tr>");
        }
        html.Append("</table>");
        foreach (var note in table.Notes) html.Append("<div>").Append(E(note)).Append("</div>");
        return html.ToString();
    }
}
