namespace Toolkit.Tests.Support;

/// <summary>
/// Test classes that start the emulated cluster (network namespaces named tk&lt;pid&gt;…) run one after another:
/// their tests check that every namespace is gone after a run, which another class's cluster would contradict.
/// </summary>
[CollectionDefinition(Name)]
public sealed class EmulatedClusterCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "emulated cluster";
}
