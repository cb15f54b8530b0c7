using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Toolkit.Analyzers;

namespace Toolkit.Tests.Analyzers;

/// <summary>TK0001 flags exactly the numbers that become unheld TorchSharp Scalars or Tensors, not the safe
/// forms.</summary>
public sealed class ScalarTemporaryAnalyzerTests
{
    [Theory]
    [InlineData("t.clamp(-1.0, 1.0)", 2)]                        // Scalar parameters
    [InlineData("t.index_add(0, i, u, 1)", 1)]                   // the alpha that crashed a CI run
    [InlineData("t.masked_fill(t > u, 0.0f)", 1)]
    [InlineData("t.mul_(0.9).addcmul_(u, u, value: 0.1)", 2)]
    [InlineData("t.eq(3)", 1)]
    [InlineData("torch.arange(n)", 1)]
    [InlineData("t.lerp_(u, 0.5)", 1)]                           // a number becoming a Tensor
    // 0.107's operators taking a number do not hold it either
    [InlineData("t * 0.5 + 1 - u / 2", 3)]
    [InlineData("t * u + (t - u) / u", 0)]                       // tensors only
    [InlineData("t.mul_(s).clamp(s, s)", 0)]                     // a held Scalar
    [InlineData("torch.zeros(n, 3)", 0)]                         // shapes are not Scalars
    public void FlagsOnlyUnheldScalars(string expression, int expected)
    {
        var source = $$"""
            using TorchSharp;
            using static TorchSharp.torch;
            static class Snippet
            {
                static object Run(Tensor t, Tensor u, Tensor i, long n)
                {
                    using var s = 0.5.ToScalar();
                    return {{expression}};
                }
            }
            """;
        var diagnostics = Analyze(source);
        Assert.All(diagnostics, d => Assert.Equal(ScalarTemporaryAnalyzer.Id, d.Id));
        Assert.Equal(expected, diagnostics.Length);
    }

    [Fact]
    public void Message_NamesTheValue_AndTheRemedy()
    {
        var diagnostic = Assert.Single(Analyze("""
            using static TorchSharp.torch;
            static class Snippet { static Tensor Run(Tensor t, double c) => t.clamp_max(c); }
            """));
        Assert.Equal(DiagnosticSeverity.Error, diagnostic.Severity);
        Assert.Contains("'c' becomes a temporary Scalar", diagnostic.GetMessage());
        Assert.Contains("ToScalar()", diagnostic.GetMessage());
    }

    private static ImmutableArray<Diagnostic> Analyze(string source)
    {
        var platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Select(path => MetadataReference.CreateFromFile(path));
        var compilation = CSharpCompilation.Create("Snippet", [CSharpSyntaxTree.ParseText(source)],
            [.. platform, MetadataReference.CreateFromFile(typeof(TorchSharp.Scalar).Assembly.Location)],
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors));   // the snippet itself must compile
        return compilation.WithAnalyzers([new ScalarTemporaryAnalyzer()]).GetAnalyzerDiagnosticsAsync().Result;
    }
}
