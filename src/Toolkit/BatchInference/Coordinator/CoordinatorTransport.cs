using System.Reflection;
using System.Security.Cryptography;

namespace Toolkit.BatchInference;

/// <summary>
/// How a coordinator is served to workers in other processes, and how such a worker reaches it. The library holds the
/// job, the coordinator and the workers; the transport (gRPC over HTTP/2, in the <c>Toolkit.Grpc</c> assembly, which
/// needs ASP.NET Core) is found by <see cref="CoordinatorTransports.Find"/> when a job first needs it. Jobs whose
/// workers run in the launching process (<c>--launcher inproc</c>) need none.
/// </summary>
internal interface ICoordinatorTransport
{
    /// <summary>Starts serving <paramref name="core"/> on <paramref name="bind"/>:<paramref name="port"/> (0: a free
    /// port).</summary>
    /// <param name="core">The coordinator.</param>
    /// <param name="bind">An IP address or <c>localhost</c>; <c>0.0.0.0</c> for every interface.</param>
    /// <param name="port">The port, or 0.</param>
    /// <param name="token">The token every call must carry (loopback included).</param>
    /// <param name="certificate">Serve TLS with this certificate (<see cref="CoordinatorTls"/>); null: cleartext,
    /// which only loopback or an explicit <c>--insecure</c> allows.</param>
    /// <exception cref="ArgumentException">No token, or an address that is not an IP.</exception>
    Task<ICoordinatorEndpoint> ServeAsync(CoordinatorCore core, string bind, int port, string token,
        System.Security.Cryptography.X509Certificates.X509Certificate2? certificate);

    /// <summary>A worker's connection to the coordinator at <paramref name="address"/>, presenting
    /// <paramref name="token"/> if given, and for an <c>https</c> address accepting only the certificate whose
    /// SHA-256 fingerprint is <paramref name="fingerprint"/>.</summary>
    /// <exception cref="ArgumentException">Not a coordinator address, or an https address without a
    /// fingerprint.</exception>
    IRemoteCoordinator Connect(string address, string? token, string? fingerprint = null);

    /// <summary>
    /// What a failed call means to a worker: null when <paramref name="error"/> is not a transport failure, otherwise
    /// whether the coordinator refused the worker (a wrong or missing token) and its explanation.
    /// </summary>
    CoordinatorFault? Explain(Exception error);
}

/// <summary>A served coordinator; disposing it stops serving.</summary>
internal interface ICoordinatorEndpoint : IAsyncDisposable
{
    /// <summary>The address workers connect to (<c>http://host:port</c>).</summary>
    string Address { get; }

    /// <summary>The token every call must carry.</summary>
    string Token { get; }

    /// <summary>The SHA-256 fingerprint of the certificate it serves TLS with, or null (cleartext).</summary>
    string? Fingerprint { get; }
}

/// <summary>A coordinator in another process, as a worker sees it; disposing it closes the connection.</summary>
internal interface IRemoteCoordinator : ICoordinator, IDisposable;

/// <summary>A transport failure explained: <paramref name="Refused"/> when the coordinator refused the worker
/// (final), otherwise it could not be reached.</summary>
internal sealed record CoordinatorFault(bool Refused, string Detail);

/// <summary>Finds the transport, and makes the tokens that protect a coordinator.</summary>
internal static class CoordinatorTransports
{
    /// <summary>The assembly holding the gRPC transport.</summary>
    public const string GrpcAssembly = "Toolkit.Grpc";

    private const string GrpcType = "Toolkit.Grpc.GrpcTransport";

    private static readonly Lazy<ICoordinatorTransport?> Grpc = new(Load);

    /// <summary>The gRPC transport.</summary>
    /// <exception cref="FileNotFoundException">The <c>Toolkit.Grpc</c> assembly (package LmToolkit.Grpc) is not
    /// referenced; the message says what to add.</exception>
    public static ICoordinatorTransport Find() => Grpc.Value ?? throw new FileNotFoundException(
        $"batch inference with workers in other processes needs the {GrpcAssembly} assembly (the coordinator's gRPC " +
        "service): add the LmToolkit.Grpc package, or run with --launcher inproc.");

    /// <summary>
    /// The environment variable that carries the job's token to a coordinator or worker (a Kubernetes Secret, a
    /// launching process): never a command line, which every user of the machine can read.
    /// </summary>
    public const string TokenVariable = "TOOLKIT_INFER_TOKEN";

    /// <summary>The token in <see cref="TokenVariable"/>, or null when it is unset or empty.</summary>
    public static string? TokenFromEnvironment() =>
        Environment.GetEnvironmentVariable(TokenVariable) is { Length: > 0 } token ? token.Trim() : null;

    /// <summary>A random token (256 bits, URL-safe).</summary>
    public static string NewToken() =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static ICoordinatorTransport? Load()
    {
        var assembly = AppDomain.CurrentDomain.GetAssemblies().FirstOrDefault(a => a.GetName().Name == GrpcAssembly);
        if (assembly is null)
        {
            try { assembly = Assembly.Load(new AssemblyName(GrpcAssembly)); }
            catch (FileNotFoundException) { return null; }
        }
        return assembly.GetType(GrpcType) is { } type ? (ICoordinatorTransport?)Activator.CreateInstance(type) : null;
    }
}
