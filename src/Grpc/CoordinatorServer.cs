using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Toolkit.BatchInference;
using Toolkit.Grpc.Rpc;

namespace Toolkit.Grpc;

/// <summary>
/// The coordinator as a gRPC service in front of a <see cref="CoordinatorCore"/>: HTTP/2 over TLS when it has a
/// certificate, cleartext otherwise (loopback, or an explicit <c>--insecure</c>). Every call, loopback included,
/// carries the job's token as <c>authorization: Bearer &lt;token&gt;</c>; a call without it, or with another, is
/// refused (<c>Unauthenticated</c>), logged in the job folder and counted, and gets nothing.
/// </summary>
internal sealed class CoordinatorServer : ICoordinatorEndpoint
{
    private readonly WebApplication _app;

    private CoordinatorServer(WebApplication app, string address, string token, string? fingerprint)
    {
        (_app, Address, Token, Fingerprint) = (app, address, token, fingerprint);
    }

    /// <summary>The address workers connect to (<c>http://host:port</c>, or <c>https://</c> with TLS).</summary>
    public string Address { get; }

    /// <summary>The token every call must carry.</summary>
    public string Token { get; }

    /// <summary>The served certificate's SHA-256 fingerprint, or null (cleartext).</summary>
    public string? Fingerprint { get; }

    /// <summary>Starts serving <paramref name="core"/> on <paramref name="bind"/>:<paramref name="port"/> (0: a free
    /// port).</summary>
    /// <param name="core">The coordinator.</param>
    /// <param name="bind">An IP address or <c>localhost</c>; <c>0.0.0.0</c> for every interface.</param>
    /// <param name="port">The port, or 0.</param>
    /// <param name="token">The token every call must carry.</param>
    /// <param name="certificate">The TLS certificate (with its key), or null for cleartext.</param>
    /// <exception cref="ArgumentException">No token, or an address that is not an IP.</exception>
    public static async Task<CoordinatorServer> StartAsync(CoordinatorCore core, string bind, int port, string token,
        X509Certificate2? certificate = null)
    {
        if (string.IsNullOrEmpty(token))
            throw new ArgumentException(
                "the coordinator needs a token, on loopback too (any user of this machine can reach loopback)",
                nameof(token));
        var address = bind is "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(bind, out var parsed) ? parsed
            : throw new ArgumentException($"--bind must be an IP address or localhost, not '{bind}'", nameof(bind));
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(address, port, l =>
        {
            l.Protocols = HttpProtocols.Http2;
            if (certificate is not null) l.UseHttps(certificate);
        }));
        builder.Services.AddSingleton(core);
        builder.Services.AddSingleton(new TokenCheck(core, token));
        builder.Services.AddGrpc(o =>
        {
            o.Interceptors.Add<TokenCheck>();
            o.MaxReceiveMessageSize = 16 << 20;
        });
        var app = builder.Build();
        app.MapGrpcService<CoordinatorRpc>();
        await app.StartAsync();
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!
            .Addresses.First();
        var uri = new Uri(bound);
        var host = address.Equals(IPAddress.Any)
            || address.Equals(IPAddress.IPv6Any) ? Environment.MachineName : uri.Host;
        return new CoordinatorServer(app, $"{(certificate is null ? "http" : "https")}://{host}:{uri.Port}", token,
            certificate is null ? null : CoordinatorTls.Fingerprint(certificate));
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2))) await _app.StopAsync(timeout.Token);
        await _app.DisposeAsync();
    }

    /// <summary>Refuses calls without the job's token.</summary>
    private sealed class TokenCheck(CoordinatorCore core, string token) : Interceptor
    {
        private readonly byte[] _expected = Encoding.UTF8.GetBytes($"Bearer {token}");

        public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request,
            ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
        {
            var presented = context.RequestHeaders.GetValue("authorization");
            if (presented is null || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented),
                _expected))
            {
                core.Reject(
                    $"{context.Method} from {context.Peer}: {(presented is null ? "no token" : "wrong token")}");
                throw new RpcException(new Status(StatusCode.Unauthenticated,
                    "this coordinator requires the job's token (toolkit infer worker --token-file JOB_FOLDER/token, " +
                        $"or {CoordinatorTransports.TokenVariable})"));
            }
            try
            {
                return await continuation(request, context);
            }
            catch (UnauthorizedAccessException e) { throw new RpcException(new Status(StatusCode.PermissionDenied,
                e.Message)); }
            catch (ArgumentException e) { throw new RpcException(new Status(StatusCode.InvalidArgument, e.Message)); }
        }
    }
}

/// <summary>The generated service, delegating to <see cref="CoordinatorCore"/>.</summary>
internal sealed class CoordinatorRpc(CoordinatorCore core) : Rpc.Coordinator.CoordinatorBase
{
    private static readonly Empty Nothing = new();

    public override async Task<JoinReply> Join(JoinRequest request, ServerCallContext context)
    {
        var join = await core.JoinAsync(new WorkerHello(request.Worker, request.Host, request.Pid));
        return new JoinReply { SpecJson = join.SpecJson, JobFolder = join.JobFolder };
    }

    public override async Task<LeaseReply> Lease(LeaseRequest request, ServerCallContext context)
    {
        var grant = await core.LeaseAsync(request.Worker, request.MaxShards);
        var reply = new LeaseReply { Finished = grant.Finished };
        reply.Leases.AddRange(grant.Leases.Select(l => new Rpc.Lease
        {
            Shard = l.Shard.Id, FirstRecord = l.Shard.FirstRecord, Records = l.Shard.Records,
                Attempts = l.Shard.Attempts,
            Token = l.Token, ExpiresUnixMs = l.Expires.ToUnixTimeMilliseconds(),
        }));
        return reply;
    }

    public override async Task<HeartbeatReply> Heartbeat(HeartbeatRequest request, ServerCallContext context)
    {
        var report = new WorkerReport([.. request.Stages.Select(s => new StageReport(s.Name, s.Tasks, s.Busy, s.Items,
            s.Queue))], request.Records, request.ReplicaRestarts);
        var kept = await core.HeartbeatAsync(request.Worker, [.. request.Held.Select(h => new HeldShard(h.Shard,
            h.Token))], report);
        var reply = new HeartbeatReply();
        reply.Kept.AddRange(kept);
        return reply;
    }

    public override async Task<CommitReply> Commit(CommitRequest request, ServerCallContext context)
    {
        var outcome = await core.CommitAsync(request.Worker, new ShardCommit(request.Shard, request.Token,
            request.Output, request.Records, request.Quarantined, request.Seconds));
        return new CommitReply { Outcome = outcome.ToString() };
    }

    public override async Task<Empty> Release(ReleaseRequest request, ServerCallContext context)
    {
        await core.ReleaseAsync(request.Worker, new HeldShard(request.Held.Shard, request.Held.Token), request.Reason,
            request.Preempted);
        return Nothing;
    }

    public override async Task<Empty> Leave(LeaveRequest request, ServerCallContext context)
    {
        await core.LeaveAsync(request.Worker, request.Reason);
        return Nothing;
    }
}
