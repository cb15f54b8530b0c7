using System.Diagnostics;
using Grpc.Core;
using Toolkit.BatchInference;
using Toolkit.Grpc;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// The coordinator as a real gRPC service on loopback: workers through the generated client finish a job exactly once;
/// a non-loopback bind needs a token; a wrong or missing token is refused, logged and counted; and a real worker
/// process (toolkit infer worker) drains on SIGTERM without costing its shards an attempt.
/// </summary>
public sealed class CoordinatorServiceTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-coordinator-");

    public void Dispose() => _folder.Dispose();

    private CoordinatorCore Core(int records, Func<InferJobOptions, InferJobOptions>? change = null)
    {
        var spec = new InferJobOptions {
            Data = new() { Input = Inputs.Jsonl(_folder.Path, records) },
            Scheduling = new() { ShardSize = 25, LeaseSeconds = 30 },
            Models = new() { BatchSize = 8 },
        };
        spec = change?.Invoke(spec) ?? spec;
        return new CoordinatorCore(spec, _folder.Path, new SqliteShardStore(Path.Combine(_folder.Path,
            InferLayout.StateFile)), records);
    }

    /// <summary>
    /// Adaptive shards (--shard-seconds 10): first shards are whole (rates unknown); near the end a fast worker's shard
    /// is cut to the waiting records' share per active worker; a worker measured at 2 records/s gets 10 s of work; no
    /// piece is left under a batch.
    /// </summary>
    [Fact]
    public async Task Leases_SplitShardsToTheBacklogShareAndTheWorkersRate()
    {
        using var core = Core(400, s => s with {
            Scheduling = s.Scheduling with { ShardSize = 100, ShardSeconds = 10 },
            Models = s.Models with { BatchSize = 4 },
        });
        async Task<ShardLease> Lease(string worker) => (await core.LeaseAsync(worker, 1)).Leases.Single();
        Task Done(string worker, ShardLease lease, double seconds) => core.CommitAsync(worker, Parts.Write(core,
            lease, seconds));
        await core.JoinAsync(new WorkerHello("slow", "host", 1));
        await core.JoinAsync(new WorkerHello("fast", "host", 2));
        var slow = await Lease("slow");
        var fast = await Lease("fast");
        Assert.Equal((0L, 100L, 100L, 100L), (slow.Shard.FirstRecord, slow.Shard.Records, fast.Shard.FirstRecord,
            fast.Shard.Records));
        await Done("fast", fast, 0.1);   // 1000 records/s
        fast = await Lease("fast");
        // 200 wait for 2 workers: a whole shard
        Assert.Equal((200L, 100L), (fast.Shard.FirstRecord, fast.Shard.Records));
        await Done("fast", fast, 0.1);
        fast = await Lease("fast");
        // 100 wait for 2 workers: half
        Assert.Equal((300L, 50L), (fast.Shard.FirstRecord, fast.Shard.Records));
        // 2 records/s
        await Done("slow", slow, 50);
        slow = await Lease("slow");
        Assert.Equal((350L, 20L), (slow.Shard.FirstRecord, slow.Shard.Records));           // 10 s of its work
        fast = await Lease("fast");
        // the 30 left, shared by 2 workers
        Assert.Equal((370L, 15L), (fast.Shard.FirstRecord, fast.Shard.Records));
        fast = await Lease("fast");
        Assert.Equal((385L, 8L), (fast.Shard.FirstRecord, fast.Shard.Records));            // 15 left: 8 and 7
        fast = await Lease("fast");
        // 7 left: 4 and 3 would leave a piece under a batch (4)
        Assert.Equal((393L, 7L), (fast.Shard.FirstRecord, fast.Shard.Records));
        Assert.Empty((await core.LeaseAsync("fast", 1)).Leases);
    }

    [Fact]
    public async Task WorkersOverGrpc_FinishTheJob_ExactlyOnce()
    {
        using var core = Core(130);
        await using var server = await CoordinatorServer.StartAsync(core, "127.0.0.1", 0, token: "t");
        Assert.StartsWith("http://127.0.0.1:", server.Address);
        var workers = Enumerable.Range(0, 2).Select(async i =>
        {
            using var client = new GrpcCoordinator(server.Address, "t");
            return await new InferenceWorker(client, $"g{i}", _ => [new LengthModel()]).RunAsync();
        }).ToList();
        var summaries = await Task.WhenAll(workers);
        Assert.Equal(130, summaries.Sum(s => s.Records));
        Assert.True(InferOutput.Verify(_folder.Path, RecordSource.Open(core.Spec)).ExactlyOnce);
        Assert.Equal(["g0", "g1"], core.Status().Workers.Select(w => w.Id).Order());
    }

    [Fact]
    public async Task AWorkerRetriesACoordinatorThatIsNotListening_UntilItsGraceRunsOut()
    {
        // A port nobody listens on: the client sees Unavailable, which a restarting coordinator also gives.
        using var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        var port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        using var client = new GrpcCoordinator($"http://127.0.0.1:{port}", null);
        var lines = new List<string>();
        var worker = new InferenceWorker(client, "w", _ => [new LengthModel()])
        {
            // long enough for two retries when connecting is slow on a busy machine
            CoordinatorGrace = TimeSpan.FromSeconds(3), Log = l => { lock (lines) lines.Add(l); },
        };
        var e = await Assert.ThrowsAsync<RpcException>(() => worker.RunAsync());
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.True(lines.Count(l => l.Contains("coordinator unreachable")) >= 2, string.Join("\n", lines));
    }

    /// <summary>Loopback too: any user of the machine can reach it.</summary>
    [Fact]
    public async Task EveryListener_RequiresAToken_AndWrongTokensGetNothing_OnLoopbackToo()
    {
        using var core = Core(50);
        foreach (var bind in new[] { "127.0.0.1", "0.0.0.0" })
        {
            var refused = await Assert.ThrowsAsync<ArgumentException>(() => CoordinatorServer.StartAsync(core, bind,
                0, token: null!));
            Assert.Contains("needs a token", refused.Message);
        }

        await using var server = await CoordinatorServer.StartAsync(core, "127.0.0.1", 0, token: "s3cret");
        foreach (var wrong in new string?[] { null, "guess" })
        {
            using var client = new GrpcCoordinator(server.Address, wrong);
            var e = await Assert.ThrowsAsync<RpcException>(() => client.JoinAsync(new WorkerHello("intruder",
                "elsewhere", 1)));
            Assert.Equal(StatusCode.Unauthenticated, e.StatusCode);
            Assert.False(((ICoordinator)client).IsTransient(e));   // a refused token is final: the worker gives up
            await Assert.ThrowsAsync<RpcException>(() => client.LeaseAsync("intruder", 1));
        }
        Assert.Equal(4, core.Rejected);
        Assert.Empty(core.Status().Workers);
        Assert.Equal(0, core.Status().ShardsLeased);

        using var right = new GrpcCoordinator(server.Address, "s3cret");
        var summary = await new InferenceWorker(right, "ok", _ => [new LengthModel()]).RunAsync();
        Assert.Equal(50, summary.Records);
    }

    /// <summary>
    /// Beyond loopback the coordinator serves TLS with a certificate made for the job (key file 0600); a worker that
    /// pins its fingerprint works, one that pins another fingerprint is refused for good, and an https address without
    /// a fingerprint is an error.
    /// </summary>
    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task TheCoordinatorServesTls_AndWorkersAcceptOnlyThePinnedCertificate()
    {
        using var core = Core(50);
        using var certificate = CoordinatorTls.Create(_folder.Path, Environment.MachineName);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite,
            File.GetUnixFileMode(Path.Combine(_folder.Path, CoordinatorTls.KeyFile)));
        await using var server = await CoordinatorServer.StartAsync(core, "0.0.0.0", 0, "s3cret", certificate);
        Assert.StartsWith("https://", server.Address);
        Assert.Equal(CoordinatorTls.Fingerprint(certificate), server.Fingerprint);
        var local = server.Address.Replace(Environment.MachineName, "127.0.0.1", StringComparison.Ordinal);

        Assert.Throws<ArgumentException>(() => new GrpcCoordinator(local, "s3cret"));
        using (var impostor = new GrpcCoordinator(local, "s3cret", new string('0', 64)))
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => impostor.JoinAsync(new WorkerHello("x", "h", 1)));
            Assert.False(((ICoordinator)impostor).IsTransient(e), e.ToString());   // another certificate: final
        }
        Assert.Empty(core.Status().Workers);

        using var pinned = new GrpcCoordinator(local, "s3cret", server.Fingerprint!.ToUpperInvariant());
        var summary = await new InferenceWorker(pinned, "tls", _ => [new LengthModel()]).RunAsync();
        Assert.Equal(50, summary.Records);
        // a restarted coordinator keeps its identity: workers that pinned it reconnect
        using var again = CoordinatorTls.Create(_folder.Path, Environment.MachineName);
        Assert.Equal(server.Fingerprint, CoordinatorTls.Fingerprint(again));
    }

    [Fact]
    public async Task AWorkerProcess_DrainsOnSigterm_CommitsWhatItHolds_AndCostsNoAttempt()
    {
        // A real MiniLM worker process on a job long enough that it is mid-way when SIGTERM arrives.
        var input = Path.Combine(_folder.Path, "sentences.jsonl");
        SentenceDataset.Write(input, 600);
        var spec = new InferJobOptions {
            Data = new() { Input = input },
            Scheduling = new() { ShardSize = 50, LeaseSeconds = 30 },
        };
        using var core = new CoordinatorCore(spec, _folder.Path, new SqliteShardStore(Path.Combine(_folder.Path,
            InferLayout.StateFile)), 600);
        await using var server = await CoordinatorServer.StartAsync(core, "127.0.0.1", 0, token: "t0ken");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Repository.CliDll, "infer", "worker", "--coordinator", server.Address, "--id",
            "victim" }) start.ArgumentList.Add(a);
        start.Environment[CoordinatorTransports.TokenVariable] = "t0ken";
        using var process = Process.Start(start)!;
        var log = new System.Text.StringBuilder();
        process.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        process.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (core.Status().ShardsDone < 1 && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.True(core.Status().ShardsDone >= 1, $"the worker committed nothing in 90 s:\n{log}");

        var before = core.Status();   // what it had committed and what it held when the signal was sent
        ProcessPool.Signal(process.Id, 15);
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);

        Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}:\n{log}");
        Assert.Contains("draining", log.ToString());
        var status = core.Status();
        // It committed every shard it held (a drain gives nothing back), then stopped taking work.
        Assert.InRange(status.ShardsDone, before.ShardsDone + before.ShardsLeased, 11);
        Assert.Equal(0, status.ShardsLeased);
        Assert.Equal("drained", status.Workers.Single().Left);
        using var store = new SqliteShardStore(Path.Combine(_folder.Path, InferLayout.StateFile));
        Assert.All(store.Shards(), s => Assert.Equal(0, s.Attempts));
    }
}
