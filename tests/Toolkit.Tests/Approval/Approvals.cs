using Toolkit.Tests.Support;

namespace Toolkit.Tests.Approval;

/// <summary>
/// Approval testing: a text users depend on (help, JSON shapes, manifests) is compared with its approved copy in
/// <c>tests/Toolkit.Tests/Approval/Approved/NAME.approved.txt</c>. On a difference the new text is written next to it
/// as <c>NAME.received.txt</c>; review it and, if the change is intended, rename it over the approved file.
/// </summary>
internal static class Approvals
{
    private static string Folder => Path.Combine(Repository.Root, "tests", "Toolkit.Tests", "Approval", "Approved");

    public static void Verify(string name, string received)
    {
        received = received.Replace("\r\n", "\n", StringComparison.Ordinal).TrimEnd() + "\n";
        var approvedPath = Path.Combine(Folder, $"{name}.approved.txt");
        var receivedPath = Path.Combine(Folder, $"{name}.received.txt");
        var approved = File.Exists(approvedPath) ? File.ReadAllText(approvedPath) : null;
        if (approved == received)
        {
            File.Delete(receivedPath);
            return;
        }
        File.WriteAllText(receivedPath, received);
        Assert.Fail(approved is null
            ? $"No approved text for {name}: review {receivedPath} and rename it to {Path.GetFileName(approvedPath)}."
            : $"{name} changed: compare {receivedPath} with {approvedPath}; rename it over the approved file if the " +
                $"change is intended.");
    }
}
