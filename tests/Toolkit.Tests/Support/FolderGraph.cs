using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Toolkit.Tests.Support;

/// <summary>
/// Which folders of a project use which: the project's sources are compiled with Roslyn against the assemblies the
/// tests run with, and every name in a file that binds to a type declared in another folder of the project (or to a
/// member of one) is an edge from the file's folder to that folder.
/// </summary>
internal sealed class FolderGraph
{
    private FolderGraph(SortedDictionary<string, SortedDictionary<string, SortedSet<string>>> edges) => Edges = edges;

    /// <summary>Per folder (relative to the project, '/'-separated): the folders it uses, each with the types
    /// why.</summary>
    public SortedDictionary<string, SortedDictionary<string, SortedSet<string>>> Edges { get; }

    /// <summary>The graph of the project in <paramref name="projectFolder"/> (its .cs files outside bin/ and
    /// obj/).</summary>
    public static FolderGraph Of(string projectFolder)
    {
        var files = Directory.EnumerateFiles(projectFolder, "*.cs", SearchOption.AllDirectories)
            .Where(f => !Relative(projectFolder, f).Split('/').Any(part => part is "bin" or "obj"))
            .Order(StringComparer.Ordinal).ToList();
        var trees = files.Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), Parse, f)).ToList();
        var usings = CSharpSyntaxTree.ParseText(ImplicitUsings, Parse, "GlobalUsings.cs");
        var compilation = CSharpCompilation.Create("FolderGraph", [.. trees, usings], References(),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true));
        var edges = new SortedDictionary<string, SortedDictionary<string, SortedSet<string>>>(StringComparer.Ordinal);
        foreach (var tree in trees)
        {
            var from = Folder(projectFolder, tree.FilePath);
            if (!edges.ContainsKey(from)) edges[from] = new(StringComparer.Ordinal);
            var model = compilation.GetSemanticModel(tree);
            foreach (var name in tree.GetRoot().DescendantNodes().OfType<SimpleNameSyntax>())
            {
                if (DeclaringType(model.GetSymbolInfo(name).Symbol) is not { } type) continue;
                var declared = type.DeclaringSyntaxReferences.Select(r => r.SyntaxTree.FilePath)
                    .Where(p => p.StartsWith(projectFolder, StringComparison.Ordinal))
                    .Select(p => Folder(projectFolder, p)).Distinct().ToList();
                foreach (var to in declared.Where(to => to != from && !declared.Contains(from)))
                {
                    if (!edges[from].TryGetValue(to, out var why)) edges[from][to] = why = new(StringComparer.Ordinal);
                    why.Add(type.Name);
                }
            }
        }
        return new FolderGraph(edges);
    }

    /// <summary>The groups of folders that use each other, directly or through others (each sorted).</summary>
    public IReadOnlyList<IReadOnlyList<string>> Cycles()
    {
        // Tarjan's strongly connected components; a component of more than one folder is a cycle.
        var index = new Dictionary<string, int>();
        var low = new Dictionary<string, int>();
        var stack = new Stack<string>();
        var cycles = new List<IReadOnlyList<string>>();
        void Visit(string v)
        {
            index[v] = low[v] = index.Count;
            stack.Push(v);
            foreach (var w in Edges.GetValueOrDefault(v)?.Keys ?? Enumerable.Empty<string>())
                if (!index.ContainsKey(w)) { Visit(w); low[v] = Math.Min(low[v], low[w]); }
                else if (stack.Contains(w)) low[v] = Math.Min(low[v], index[w]);
            if (low[v] != index[v]) return;
            var component = new List<string>();
            string top;
            do { top = stack.Pop(); component.Add(top); } while (top != v);
            if (component.Count > 1) cycles.Add([.. component.Order(StringComparer.Ordinal)]);
        }
        foreach (var v in Edges.Keys) if (!index.ContainsKey(v)) Visit(v);
        return cycles;
    }

    /// <summary>The graph as a Markdown list: an item per folder with the folders it uses, wrapped at 120.</summary>
    public string ToMarkdown()
    {
        var lines = new List<string>();
        foreach (var (from, to) in Edges)
        {
            var words = to.Count == 0 ? ["nothing"] : to.Keys.Select((k,
                i) => $"`{k}`" + (i < to.Count - 1 ? "," : ""));
            var line = $"- `{from}` →";
            foreach (var word in words)
            {
                if (line.Length + 1 + word.Length > 120) { lines.Add(line); line = "  " + word; }
                else line += " " + word;
            }
            lines.Add(line);
        }
        return string.Join("\n", lines);
    }

    private static readonly CSharpParseOptions Parse = new(LanguageVersion.Preview);

    // The SDK's implicit usings for a library (Directory.Build.props enables them).
    private const string ImplicitUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    private static ITypeSymbol? DeclaringType(ISymbol? symbol) => symbol switch
    {
        null or INamespaceSymbol or ILocalSymbol or IParameterSymbol or IRangeVariableSymbol or ILabelSymbol => null,
        ITypeSymbol type => Unwrap(type),
        IMethodSymbol { MethodKind: MethodKind.ReducedExtension } method => method.ReducedFrom?.ContainingType,
        _ => symbol.ContainingType is { } containing ? Unwrap(containing) : null,
    };

    private static ITypeSymbol? Unwrap(ITypeSymbol type) => type switch
    {
        IArrayTypeSymbol array => Unwrap(array.ElementType),
        INamedTypeSymbol { IsGenericType: true } generic => generic.OriginalDefinition,
        ITypeParameterSymbol => null,
        _ => type,
    };

    private static IEnumerable<MetadataReference> References()
    {
        // The test run's own assemblies (the project's dependencies among them), minus the project's own output.
        var platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        var local = Directory.EnumerateFiles(AppContext.BaseDirectory, "*.dll")
            .Where(f => !Path.GetFileName(f).StartsWith("Toolkit", StringComparison.Ordinal));
        return platform.Concat(local).DistinctBy(Path.GetFileName).Select(f => MetadataReference.CreateFromFile(f));
    }

    private static string Relative(string root, string path) => Path.GetRelativePath(root, path).Replace('\\', '/');

    private static string Folder(string root, string file) =>
        Path.GetDirectoryName(Relative(root, file))!.Replace('\\', '/') is { Length: > 0 } folder ? folder : ".";
}
