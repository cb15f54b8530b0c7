using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Toolkit.BatchInference;

namespace Toolkit.Grpc;

/// <summary>
/// The batch-inference coordinator over gRPC (HTTP/2, over TLS beyond loopback): the library finds this type when a
/// job's workers run in other processes (<see cref="CoordinatorTransports.Find"/>).
/// </summary>
internal sealed class GrpcTransport : ICoordinatorTransport
{
    /// <inheritdoc/>
    public async Task<ICoordinatorEndpoint> ServeAsync(CoordinatorCore core, string bind, int port, string token,
        X509Certificate2? certificate) => await CoordinatorServer.StartAsync(core, bind, port, token, certificate);

    /// <inheritdoc/>
    public IRemoteCoordinator Connect(string address, string? token, string? fingerprint = null) =>
        new GrpcCoordinator(address, token, fingerprint);

    /// <inheritdoc/>
    /// <remarks>At start (joining) a call fails as itself; later a stage fails and the worker wraps it.</remarks>
    public CoordinatorFault? Explain(Exception error) =>
        (error as RpcException ?? error.InnerException as RpcException) is { } rpc
            ? new CoordinatorFault(rpc.StatusCode is StatusCode.Unauthenticated or StatusCode.PermissionDenied,
                rpc.Status.Detail)
            : null;
}
