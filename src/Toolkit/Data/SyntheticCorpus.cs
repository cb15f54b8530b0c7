using System.Text;

namespace Toolkit.Data;

/// <summary>
/// Generates the toolkit's training corpus: short stories from fixed templates and word lists, deterministic for a
/// seed. It has enough structure (agreement, repeated characters, a moral per story) for a small GPT to learn visibly
/// in minutes on a CPU, and it needs no download. <c>datasets/synthetic-stories.txt</c> is <c>Generate(seed: 1,
/// stories: 2000)</c>; the library embeds that file, and <c>toolkit data corpus</c> regenerates it.
/// </summary>
internal static class SyntheticCorpus
{
    private static readonly string[] Names = ["Mia", "Leo", "Ava", "Sam", "Nora", "Ben", "Lily", "Max", "Zoe", "Tom",
        "Ruby", "Finn"];
    private static readonly string[] Animals = ["cat", "dog", "fox", "owl", "rabbit", "turtle", "bird", "frog", "bear",
        "mouse"];
    private static readonly string[] Places = ["the park", "the forest", "the river", "the garden", "the beach",
        "the hill", "the old barn", "the library"];
    private static readonly string[] Objects = ["a red ball", "a shiny key", "a small boat", "a blue kite", "a map",
        "a jar of honey", "a lost hat", "a wooden box"];
    private static readonly string[] Feelings = ["happy", "sad", "curious", "brave", "tired", "surprised", "proud",
        "scared"];
    private static readonly string[] Morals =
    [
        "Sharing makes everyone happy.", "It is good to ask for help.", "Being kind is always worth it.",
        "Patience brings good things.", "Friends make hard days easier.", "Trying again is how we learn.",
    ];

    /// <summary>Generates <paramref name="stories"/> stories from <paramref name="seed"/>.</summary>
    public static string Generate(int seed, int stories)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(stories, 1);
        var random = new Random(seed);
        T Pick<T>(T[] items) => items[random.Next(items.Length)];
        var text = new StringBuilder();
        for (var i = 0; i < stories; i++)
        {
            string name = Pick(Names), friend = Pick(Names.Where(n => n != name).ToArray()), animal = Pick(Animals),
                place = Pick(Places), thing = Pick(Objects), feeling = Pick(Feelings);
            text.Append($"Once upon a time, {name} went to {place} with a {animal}. ");
            text.Append($"There, {name} found {thing}. {name} felt {feeling}. ");
            text.Append(random.Next(2) == 0
                ? $"{friend} came by and asked, \"Can I see {thing}?\" {name} said, \"Yes, let us look together.\" "
                : $"The {animal} wanted {thing} too, so {name} and the {animal} took turns. ");
            text.Append($"At the end of the day, {name} and {friend} walked home from {place}. {Pick(Morals)}\n");
        }
        return text.ToString();
    }

    /// <summary>The committed corpus, embedded in the library (about 0.5 MB).</summary>
    public static string Embedded()
    {
        using var stream
            = typeof(SyntheticCorpus).Assembly.GetManifestResourceStream("Toolkit.Data.synthetic-stories.txt")
            ?? throw new InvalidOperationException("The embedded corpus is missing from the Toolkit assembly.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}
