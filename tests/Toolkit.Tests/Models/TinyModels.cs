using Toolkit.Models;

namespace Toolkit.Tests.Models;

/// <summary>Random-weight Hugging Face folders written by <see cref="ModelInit"/> for the tests (each test deletes its
/// own).</summary>
internal static class TinyModels
{
    /// <summary>A folder of <paramref name="arch"/>; <paramref name="configure"/> adjusts the defaults (2 layers,
    /// hidden 64, 4/2 heads).</summary>
    public static string Write(string root, string arch, Func<ModelInitOptions, ModelInitOptions>? configure = null)
    {
        var options = new ModelInitOptions { Arch = arch, Out = Path.Combine(root, arch), Vocabulary = 300,
            Context = 64, InitStd = 0.1 };
        return ModelInit.Run(configure?.Invoke(options) ?? options);
    }

    /// <summary>A sentence the tests feed (about 30 tokens with a 300-token vocabulary).</summary>
    public const string Sentence
        = "Once upon a time, Mia went to the park with a small boat. Sharing makes everyone happy.";
}
