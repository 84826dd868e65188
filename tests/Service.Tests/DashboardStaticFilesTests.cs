using System.Net;
using System.Text.RegularExpressions;

namespace LongSeqService.Service.Tests;

/// <summary>The dashboard's files are served at / without a key, every file they load is there, and
/// serving them changes nothing for the API's auth or its OpenAPI document.</summary>
public sealed partial class DashboardStaticFilesTests(ServiceFactory factory) : IClassFixture<ServiceFactory>
{
    [Fact]
    public async Task Root_ServesTheDashboardAnonymously_ApiStillNeedsAKey()
    {
        var anonymous = factory.Client(null);
        var page = await anonymous.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("js/app.js", await page.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/v1/jobs")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await factory.Client(ServiceFactory.AdminKey).GetAsync("/v1/jobs")).StatusCode);
        var openApi = await anonymous.GetStringAsync("/openapi/v1.json");
        Assert.DoesNotContain("index.html", openApi);
    }

    [Fact]
    public async Task EveryScriptStylesheetAndImport_IsServedAsJavaScriptOrCss()
    {
        var client = factory.Client(null);
        var seen = new HashSet<string>();
        var queue = new Queue<string>(References("/", await client.GetStringAsync("/")));
        while (queue.TryDequeue(out var path))
        {
            if (!seen.Add(path)) continue;
            var response = await client.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {(int)response.StatusCode}");
            var type = response.Content.Headers.ContentType?.MediaType;
            Assert.True(type == (path.EndsWith(".css") ? "text/css" : "text/javascript"), $"{path} is served as {type}");
            if (path.StartsWith("/js/")) foreach (var next in References(path, await response.Content.ReadAsStringAsync())) queue.Enqueue(next);
        }
        // The shell, the views, the three libraries (js-yaml is imported on demand) and the stylesheets.
        Assert.Superset(new HashSet<string> { "/js/app.js", "/js/views/job.js", "/js/views/new-job.js", "/lib/signalr.min.js",
            "/lib/uPlot.iife.min.js", "/lib/js-yaml.mjs", "/lib/uPlot.min.css", "/css/app.css" }, seen);
    }

    /// <summary>src/href of scripts and stylesheets, and the targets of static and dynamic imports, as absolute paths.</summary>
    private static IEnumerable<string> References(string from, string text) =>
        Reference().Matches(text).Select(m => m.Groups["url"].Value)
            .Where(u => u.EndsWith(".js") || u.EndsWith(".mjs") || u.EndsWith(".css"))
            .Select(u => new Uri(new Uri("http://x" + from), u).AbsolutePath);

    [GeneratedRegex(@"(?:src=|href=|from\s*|import\()\s*['""](?<url>[^'""]+)['""]")]
    private static partial Regex Reference();
}
