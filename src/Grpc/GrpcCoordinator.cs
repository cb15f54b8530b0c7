using System.Net.Security;
using Grpc.Core;
using Grpc.Net.Client;
using Toolkit.BatchInference;
using Toolkit.Grpc.Rpc;

namespace Toolkit.Grpc;

/// <summary>A worker's view of a remote coordinator: <see cref="ICoordinator"/> over gRPC.</summary>
internal sealed class GrpcCoordinator : IRemoteCoordinator
{
    private readonly GrpcChannel _channel;
    private readonly Rpc.Coordinator.CoordinatorClient _client;
    private readonly Metadata _headers = [];

    /// <summary>Connects to <paramref name="address"/> (<c>http://host:port</c>, or <c>https://</c> accepting only
    /// the certificate whose SHA-256 fingerprint is <paramref name="fingerprint"/>), presenting
    /// <paramref name="token"/> if given.</summary>
    public GrpcCoordinator(string address, string? token, string? fingerprint = null)
    {
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new ArgumentException(
                $"'{address}' is not a coordinator address (http[s]://host:port, as written in the job " +
                    $"folder's {InferLayout.CoordinatorFile})", nameof(address));
        var handler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true };
        if (uri.Scheme == "https")
        {
            if (string.IsNullOrWhiteSpace(fingerprint))
                throw new ArgumentException(
                    $"{address} serves TLS: pass its certificate's fingerprint (--fingerprint, from the job folder's " +
                        $"{InferLayout.CoordinatorFile})", nameof(fingerprint));
            var pin = CoordinatorTls.Normalize(fingerprint);
            handler.SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, _) => CoordinatorTls.Matches(certificate,
                    pin),
            };
        }
        _channel = GrpcChannel.ForAddress(uri, new GrpcChannelOptions { MaxReceiveMessageSize = 16 << 20,
            HttpHandler = handler });
        _client = new Rpc.Coordinator.CoordinatorClient(_channel);
        if (!string.IsNullOrEmpty(token)) _headers.Add("authorization", $"Bearer {token}");
    }

    /// <summary>
    /// A coordinator that is restarting refuses connections or does not answer in time: retry those (and what
    /// <see cref="ICoordinator"/> retries); a refused token, or a certificate other than the pinned one, is final.
    /// </summary>
    public bool IsTransient(Exception error) => !RefusedCertificate(error) && (error is IOException
        or HttpRequestException or TimeoutException
        or RpcException { StatusCode: StatusCode.Unavailable or StatusCode.DeadlineExceeded });

    /// <summary>True when the failure is the server presenting another certificate than the pinned one.</summary>
    internal static bool RefusedCertificate(Exception? error)
    {
        for (var e = error; e is not null; e = e.InnerException ?? (e as RpcException)?.Status.DebugException)
            if (e is System.Security.Authentication.AuthenticationException) return true;
        return false;
    }

    private CallOptions Options(CancellationToken cancel) => new(_headers, DateTime.UtcNow.AddSeconds(30), cancel);

    /// <inheritdoc/>
    public async Task<WorkerJoin> JoinAsync(WorkerHello hello, CancellationToken cancel = default)
    {
        var reply = await _client.JoinAsync(new JoinRequest { Worker = hello.Worker, Host = hello.Host,
            Pid = hello.ProcessId }, Options(cancel));
        return new WorkerJoin(reply.SpecJson, reply.JobFolder);
    }

    /// <inheritdoc/>
    public async Task<LeaseGrant> LeaseAsync(string worker, int maxShards, CancellationToken cancel = default)
    {
        var reply = await _client.LeaseAsync(new LeaseRequest { Worker = worker, MaxShards = maxShards },
            Options(cancel));
        return new LeaseGrant([.. reply.Leases.Select(l => new ShardLease(
            new Shard(l.Shard, l.FirstRecord, l.Records, ShardState.Leased, l.Attempts, worker,
                DateTimeOffset.FromUnixTimeMilliseconds(l.ExpiresUnixMs), null, null),
            l.Token, DateTimeOffset.FromUnixTimeMilliseconds(l.ExpiresUnixMs)))], reply.Finished);
    }

    /// <inheritdoc/>
    public async Task<IReadOnlyList<bool>> HeartbeatAsync(string worker, IReadOnlyList<HeldShard> held,
        WorkerReport report, CancellationToken cancel = default)
    {
        var request = new HeartbeatRequest { Worker = worker, Records = report.Records,
            ReplicaRestarts = report.ReplicaRestarts };
        request.Held.AddRange(held.Select(h => new Held { Shard = h.Shard, Token = h.Token }));
        request.Stages.AddRange(report.Stages.Select(s => new Rpc.Stage { Name = s.Name, Tasks = s.Tasks,
            Busy = s.Busy, Items = s.Items, Queue = s.Queue }));
        var reply = await _client.HeartbeatAsync(request, Options(cancel));
        return [.. reply.Kept];
    }

    /// <inheritdoc/>
    public async Task<CommitOutcome> CommitAsync(string worker, ShardCommit commit, CancellationToken cancel = default)
    {
        var reply = await _client.CommitAsync(new CommitRequest
        {
            Worker = worker, Shard = commit.Shard, Token = commit.Token, Output = commit.Output,
            Records = commit.Records, Quarantined = commit.Quarantined, Seconds = commit.Seconds,
        }, Options(cancel));
        return Enum.Parse<CommitOutcome>(reply.Outcome);
    }

    /// <inheritdoc/>
    public async Task ReleaseAsync(string worker, HeldShard shard, string reason, bool preempted,
        CancellationToken cancel = default) =>
        await _client.ReleaseAsync(new ReleaseRequest { Worker = worker, Held = new Held { Shard = shard.Shard,
            Token = shard.Token }, Reason = reason, Preempted = preempted }, Options(cancel));

    /// <inheritdoc/>
    public async Task LeaveAsync(string worker, string reason, CancellationToken cancel = default) =>
        await _client.LeaveAsync(new LeaveRequest { Worker = worker, Reason = reason }, Options(cancel));

    /// <inheritdoc/>
    public void Dispose() => _channel.Dispose();
}
