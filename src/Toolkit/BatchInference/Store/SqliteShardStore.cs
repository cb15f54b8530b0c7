using Microsoft.Data.Sqlite;

namespace Toolkit.BatchInference;

/// <summary>
/// <see cref="IShardStore"/> in a SQLite database (WAL journal, full synchronous commits) in the job folder.
/// Each operation is one IMMEDIATE transaction that reads the shard, checks the transition and writes it,
/// so several coordinator threads, or a coordinator restarted after a kill, always see a consistent state.
/// </summary>
internal sealed class SqliteShardStore : IShardStore
{
    private readonly SqliteConnection _connection;
    private readonly Lock _gate = new();

    /// <summary>Opens (creating if needed) the store at <paramref name="path"/>.</summary>
    public SqliteShardStore(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path,
            Pooling = false }.ToString());
        _connection.Open();
        Execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;");
        Execute("""
            CREATE TABLE IF NOT EXISTS job (id INTEGER PRIMARY KEY CHECK (id = 0), records INTEGER NOT NULL,
                shard_size INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS shards (
                id INTEGER PRIMARY KEY, first_record INTEGER NOT NULL, records INTEGER NOT NULL, state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, worker TEXT, token TEXT, expires INTEGER, last_error TEXT,
                output TEXT, quarantined INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS workers (
                id TEXT PRIMARY KEY, seq INTEGER NOT NULL, host TEXT NOT NULL, joined INTEGER NOT NULL,
                last_seen INTEGER NOT NULL,
                records INTEGER NOT NULL, shards INTEGER NOT NULL, busy REAL NOT NULL, left_reason TEXT);
            CREATE INDEX IF NOT EXISTS shards_state ON shards (state, id);
            CREATE INDEX IF NOT EXISTS shards_waiting ON shards (state, first_record);
            """);
    }

    /// <summary>The database file.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public void Initialize(long records, long shardSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(records);
        ArgumentOutOfRangeException.ThrowIfLessThan(shardSize, 1);
        InTransaction(() =>
        {
            using var read = Command("SELECT records, shard_size FROM job WHERE id = 0");
            using (var reader = read.ExecuteReader())
                if (reader.Read())
                {
                    var (r, s) = (reader.GetInt64(0), reader.GetInt64(1));
                    return r == records && s == shardSize ? 0
                        : throw new InvalidOperationException(
                            $"{Path} holds a job of {r} records in shards of {s}, not {records} in shards " +
                                $"of {shardSize}.");
                }
            Run("INSERT INTO job (id, records, shard_size) VALUES (0, $r, $s)", ("$r", records), ("$s", shardSize));
            for (long id = 0, first = 0; first < records; id++, first += shardSize)
                Run("INSERT INTO shards (id, first_record, records, state) VALUES ($id, $first, $n, 'todo')",
                    ("$id", id), ("$first", first), ("$n", Math.Min(shardSize, records - first)));
            return 0;
        });
    }

    /// <inheritdoc/>
    public ShardLease? TryLease(string worker, TimeSpan duration, DateTimeOffset now, long maxRecords = long.MaxValue,
        long minRecords = 1, bool retried = true) => InTransaction(() =>
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRecords, 1);
        var next = Query("SELECT * FROM shards WHERE state = 'todo'" + (retried ? "" : " AND attempts = 0") +
            " ORDER BY first_record LIMIT 1").FirstOrDefault();
        if (next is null) return null;
        if (next.Records - maxRecords >= Math.Max(1, minRecords))
        {
            AddWaiting(next.FirstRecord + maxRecords, next.Records - maxRecords, next.Attempts, next.LastError);
            Run("UPDATE shards SET records = $n WHERE id = $id", ("$n", maxRecords), ("$id", next.Id));
            next = next with { Records = maxRecords };
        }
        ShardTransitions.TransitionTo(next.Id, next.State, ShardState.Leased);
        var token = Guid.NewGuid().ToString("N");
        var expires = now + duration;
        Run("UPDATE shards SET state = 'leased', worker = $w, token = $t, expires = $e WHERE id = $id",
            ("$w", worker), ("$t", token), ("$e", expires.ToUnixTimeMilliseconds()), ("$id", next.Id));
        return new ShardLease(next with { State = ShardState.Leased, Worker = worker, LeaseExpires = expires }, token,
            expires);
    });

    /// <inheritdoc/>
    public long WaitingRecords() => InTransaction(() =>
    {
        using var sum = Command("SELECT COALESCE(SUM(records), 0) FROM shards WHERE state = 'todo'");
        return (long)sum.ExecuteScalar()!;
    });

    /// <inheritdoc/>
    public bool Heartbeat(long shard, string token, TimeSpan duration, DateTimeOffset now) => InTransaction(() =>
        Run("UPDATE shards SET expires = $e WHERE id = $id AND state = 'leased' AND token = $t",
            ("$e", (now + duration).ToUnixTimeMilliseconds()), ("$id", shard), ("$t", token)) == 1);

    /// <inheritdoc/>
    public CommitOutcome Commit(long shard, string token, string output, long quarantined = 0) => InTransaction(() =>
    {
        var (current, holder) = Read(shard);
        if (current.State == ShardState.Done) return CommitOutcome.AlreadyDone;
        if (current.State != ShardState.Leased || holder != token) return CommitOutcome.Stale;
        ShardTransitions.TransitionTo(shard, current.State, ShardState.Done);
        Run("UPDATE shards SET state = 'done', output = $o, quarantined = $q, token = NULL, expires = NULL WHERE id " +
            "= $id",
            ("$o", output), ("$q", quarantined), ("$id", shard));
        return CommitOutcome.Committed;
    });

    /// <inheritdoc/>
    public ShardState? Release(long shard, string token, string reason, int retryCap,
        bool countsAsAttempt = true) => InTransaction(() =>
    {
        var (current, holder) = Read(shard);
        if (current.State != ShardState.Leased || holder != token) return (ShardState?)null;
        return End(current, reason, retryCap, countsAsAttempt);
    });

    /// <inheritdoc/>
    public int ExpireLeases(DateTimeOffset now, int retryCap,
        IReadOnlySet<long>? forgiven = null, bool isolate = false) => InTransaction(() =>
    {
        var expired = Query("SELECT * FROM shards WHERE state = 'leased' AND expires < $now", ("$now",
            now.ToUnixTimeMilliseconds()));
        foreach (var shard in expired)
        {
            var reason = $"lease of {shard.Worker} expired";
            if (!isolate || forgiven?.Contains(shard.Id) == true)
                End(shard, reason, retryCap, countsAsAttempt: forgiven?.Contains(shard.Id) != true);
            else if (shard.Records > 1) Halve(shard, reason);
            else if (shard.Attempts + 1 >= IsolateAfter)
            {
                ShardTransitions.TransitionTo(shard.Id, shard.State, ShardState.Done);
                Run("UPDATE shards SET state = 'done', attempts = $a, output = $o, quarantined = 1, worker = NULL, " +
                    "token = NULL, expires = NULL, last_error = $r WHERE id = $id", ("$a", shard.Attempts + 1),
                    ("$o", $"{InferLayout.OutputFolder}/{InferLayout.PartName(shard.Id, InferLayout.Isolated)}"),
                    ("$r", reason), ("$id", shard.Id));
            }
            else End(shard, reason, retryCap, countsAsAttempt: true);
        }
        return expired.Count;
    });

    /// <summary>Leases of one record that end without a commit before the record is quarantined (with
    /// <c>isolate</c>).</summary>
    public const int IsolateAfter = 2;

    /// <summary>Back to the queue in two halves, each with one attempt: the half that holds a record that kills its
    /// worker is halved again until that record is alone.</summary>
    private void Halve(Shard shard, string reason)
    {
        ShardTransitions.TransitionTo(shard.Id, shard.State, ShardState.Todo);
        var first = shard.Records / 2;
        AddWaiting(shard.FirstRecord + first, shard.Records - first, 1, reason);
        Run("UPDATE shards SET state = 'todo', records = $n, attempts = 1, worker = NULL, token = NULL, " +
            "expires = NULL, last_error = $e WHERE id = $id", ("$n", first), ("$e", reason), ("$id", shard.Id));
    }

    /// <summary>A new waiting shard (the next id) for the records split off another one.</summary>
    private void AddWaiting(long firstRecord, long records, int attempts, string? lastError)
    {
        using var max = Command("SELECT MAX(id) FROM shards");
        var id = (long)max.ExecuteScalar()! + 1;
        Run("INSERT INTO shards (id, first_record, records, state, attempts, last_error) VALUES ($id, $first, $n, " +
            "'todo', $a, $e)", ("$id", id), ("$first", firstRecord), ("$n", records), ("$a", attempts),
            ("$e", (object?)lastError ?? DBNull.Value));
    }

    /// <inheritdoc/>
    public int Retry(bool failed, bool quarantined) => InTransaction(() =>
    {
        var again = Query("SELECT * FROM shards WHERE state = 'failed' OR (state = 'done' AND quarantined > 0)")
            .Where(s => s.State == ShardState.Failed ? failed : quarantined).ToList();
        foreach (var shard in again)
        {
            ShardTransitions.Retry(shard.Id, shard.State);
            Run("UPDATE shards SET state = 'todo', attempts = 0, output = NULL, quarantined = 0, worker = NULL, " +
                "token = NULL, expires = NULL WHERE id = $id", ("$id", shard.Id));
        }
        return again.Count;
    });

    /// <inheritdoc/>
    public IReadOnlyList<Shard> HeldBy(string worker) => InTransaction(() =>
        Query("SELECT * FROM shards WHERE state = 'leased' AND worker = $w", ("$w", worker)));

    /// <inheritdoc/>
    public int EndLeasesOf(string worker, DateTimeOffset now) => InTransaction(() =>
        Run("UPDATE shards SET expires = $now WHERE state = 'leased' AND worker = $w",
            ("$now", now.ToUnixTimeMilliseconds()), ("$w", worker)));

    /// <inheritdoc/>
    public void ExtendLeases(DateTimeOffset until) => InTransaction(() =>
        Run("UPDATE shards SET expires = MAX(expires, $u) WHERE state = 'leased'", ("$u",
            until.ToUnixTimeMilliseconds())));

    /// <inheritdoc/>
    public IReadOnlyList<Shard> Shards() => InTransaction(() => Query("SELECT * FROM shards ORDER BY id"));

    /// <inheritdoc/>
    public Shard? Find(long shard) =>
        InTransaction(() => Query("SELECT * FROM shards WHERE id = $id", ("$id", shard))).SingleOrDefault();

    /// <inheritdoc/>
    public IReadOnlyDictionary<ShardState, int> Counts()
    {
        var counts = Enum.GetValues<ShardState>().ToDictionary(s => s, _ => 0);
        foreach (var shard in Shards()) counts[shard.State]++;
        return counts;
    }

    /// <inheritdoc/>
    public void SaveWorker(WorkerInfo w) => InTransaction(() => Run("""
        INSERT INTO workers (id, seq, host, joined, last_seen, records, shards, busy, left_reason)
        VALUES ($id, (SELECT COUNT(*) FROM workers), $h, $j, $s, $r, $n, $b, $l)
        ON CONFLICT (id) DO UPDATE SET host = $h, last_seen = $s, records = $r, shards = $n, busy = $b, left_reason = $l
        """, ("$id", w.Id), ("$h", w.Host), ("$j", w.Joined.ToUnixTimeMilliseconds()),
        ("$s", w.LastSeen.ToUnixTimeMilliseconds()),
        ("$r", w.Records), ("$n", w.Shards), ("$b", w.Busy), ("$l", (object?)w.Left ?? DBNull.Value)));

    /// <inheritdoc/>
    public IReadOnlyList<WorkerInfo> Workers() => InTransaction(() =>
    {
        using var command
            = Command("SELECT id, host, joined, last_seen, records, shards, busy, left_reason FROM workers ORDER BY " +
                "seq");
        using var r = command.ExecuteReader();
        var workers = new List<WorkerInfo>();
        while (r.Read())
            workers.Add(new WorkerInfo(r.GetString(0), r.GetString(1),
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(2)),
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(3)), r.GetInt64(4), r.GetInt64(5), r.GetDouble(6),
                    r.IsDBNull(7) ? null : r.GetString(7)));
        return workers;
    });

    /// <inheritdoc/>
    public void Dispose() => _connection.Dispose();

    private ShardState End(Shard shard, string reason, int retryCap, bool countsAsAttempt)
    {
        var attempts = shard.Attempts + (countsAsAttempt ? 1 : 0);
        var next = ShardTransitions.TransitionTo(shard.Id, shard.State,
            attempts >= retryCap ? ShardState.Failed : ShardState.Todo);
        Run("UPDATE shards SET state = $s, attempts = $a, worker = NULL, token = NULL, expires = NULL, last_error = " +
            "$r WHERE id = $id",
            ("$s", Name(next)), ("$a", attempts), ("$r", reason), ("$id", shard.Id));
        return next;
    }

    private (Shard Shard, string? Token) Read(long id)
    {
        using var command = Command("SELECT *, token FROM shards WHERE id = $id", ("$id", id));
        using var reader = command.ExecuteReader();
        return reader.Read() ? (ToShard(reader),
            reader.IsDBNull(reader.GetOrdinal("token")) ? null : reader.GetString(reader.GetOrdinal("token")))
            : throw new ArgumentOutOfRangeException(nameof(id), id, "no such shard");
    }

    private List<Shard> Query(string sql, params (string Name, object Value)[] parameters)
    {
        using var command = Command(sql, parameters);
        using var reader = command.ExecuteReader();
        var shards = new List<Shard>();
        while (reader.Read()) shards.Add(ToShard(reader));
        return shards;
    }

    private static Shard ToShard(SqliteDataReader r)
    {
        string? Text(string column) => r.IsDBNull(r.GetOrdinal(column)) ? null : r.GetString(r.GetOrdinal(column));
        var expires = r.IsDBNull(r.GetOrdinal("expires"))
            ? (DateTimeOffset?)null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(r.GetOrdinal("expires")));
        return new Shard(r.GetInt64(r.GetOrdinal("id")), r.GetInt64(r.GetOrdinal("first_record")),
            r.GetInt64(r.GetOrdinal("records")),
            Parse(r.GetString(r.GetOrdinal("state"))), r.GetInt32(r.GetOrdinal("attempts")), Text("worker"), expires,
                Text("last_error"), Text("output"),
            r.GetInt64(r.GetOrdinal("quarantined")));
    }

    private static ShardState Parse(string state) => Enum.GetValues<ShardState>().First(s => Name(s) == state);

    private static string Name(ShardState state) => state.ToString().ToLowerInvariant();

    private T InTransaction<T>(Func<T> body)
    {
        lock (_gate)
        {
            Execute("BEGIN IMMEDIATE");
            try
            {
                var result = body();
                Execute("COMMIT");
                return result;
            }
            catch
            {
                Execute("ROLLBACK");
                throw;
            }
        }
    }

    private SqliteCommand Command(string sql, params (string Name, object Value)[] parameters)
    {
        var command = _connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters) command.Parameters.AddWithValue(name, value);
        return command;
    }

    private int Run(string sql, params (string Name, object Value)[] parameters)
    {
        using var command = Command(sql, parameters);
        return command.ExecuteNonQuery();
    }

    private void Execute(string sql) => Run(sql);
}
