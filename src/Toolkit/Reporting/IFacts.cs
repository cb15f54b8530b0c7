namespace Toolkit.Reporting;

/// <summary>
/// A result that describes itself once, as a title and rows of facts: the console, the notebook table and the HTML
/// report all render these rows, so the three never drift apart.
/// </summary>
internal interface IFacts
{
    /// <summary>A one-line title (the job and its run).</summary>
    string Title { get; }

    /// <summary>The facts, in reading order: a name and its value as text.</summary>
    IReadOnlyList<(string Name, string Value)> Facts();
}
