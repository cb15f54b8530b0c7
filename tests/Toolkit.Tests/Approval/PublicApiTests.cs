using PublicApiGenerator;

namespace Toolkit.Tests.Approval;

/// <summary>
/// The libraries' public surface, pinned: a type or member that becomes public, changes or goes away shows up as a
/// difference to approve (<see cref="Approvals"/>). What the CLI, the magics and the notebooks do not need stays
/// internal.
/// </summary>
public sealed class PublicApiTests
{
    [Theory]
    [InlineData("Toolkit")]
    [InlineData("Toolkit.Grpc")]
    public void PublicApi_IsTheApprovedOne(string assembly)
    {
        var api = System.Reflection.Assembly.Load(assembly).GeneratePublicApi(new ApiGeneratorOptions
        {
            IncludeAssemblyAttributes = false,
            ExcludeAttributes = ["System.Runtime.CompilerServices.NullableContextAttribute"],
        });
        Approvals.Verify($"public-api.{assembly}", api);
    }
}
