/// The console's Mustache templates, its style sheet and its one script. `{{x}}` escapes HTML; `{{{x}}}` is only used
/// for markup the server drew itself (SVG charts, rendered sections).
enum Templates {
    static let all: [String: String] = [
        "layout": layout, "board": board, "model": model, "environment": environment, "confirm": confirm, "notice": notice,
        "login": login,
    ]

    static let layout = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · Stagecraft</title>
        <link rel="stylesheet" href="/static/console.css">
        <script src="/static/console.js" defer></script>
        </head>
        <body data-refresh="{{refresh}}" data-live="{{live}}">
        <header>
        <nav aria-label="Pages"><a class="brand" href="/">Stagecraft</a> <a href="/">Board</a>\
        {{#environments}} <a href="/environments/{{.}}">{{.}}</a>{{/environments}}</nav>
        <div class="who">{{#user}}<span>Signed in as {{name}} &lt;{{email}}&gt;</span>
        <form method="post" action="/logout"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">Sign out</button>\
        </form>{{/user}}{{^user}}<span>Read-only</span> <a href="/login">Sign in</a>{{/user}}
        <span id="live" role="status" aria-live="polite">static</span></div>
        </header>
        <main id="main">
        {{{body}}}
        </main>
        <footer>Stagecraft {{version}} · {{repository}} at {{commit}}</footer>
        </body>
        </html>

        """

    static let board = """
        <h1>Board</h1>
        <p class="sub">Environments in pipeline order at <code>{{commit}}</code> on {{branch}}. A version has one colour everywhere.</p>
        <div class="scroll">
        <table class="board">
        <caption>Each model in each environment: serving and desired versions, sync, health, traffic, the last outcome and its\
         gates</caption>
        <thead><tr><th scope="col">Model</th>{{#columns}}<th scope="col"><a href="/environments/{{name}}">{{name}}</a>
        <span class="meta">{{server}} · {{#running}}running{{/running}}{{^running}}stopped{{/running}}{{#upstream}} · from {{.}}\
        {{/upstream}}{{#approval}} · approval {{.}}{{/approval}}</span>{{#error}}<span class="bad">{{.}}</span>{{/error}}</th>\
        {{/columns}}</tr></thead>
        <tbody>
        {{#rows}}<tr><th scope="row"><a href="/models/{{model}}">{{model}}</a></th>
        {{#cells}}<td class="cell h-{{health}}" id="cell-{{environment}}-{{model}}">{{#listed}}
        <div><span class="sync s-{{sync}}">{{sync}}</span> <span class="health">{{health}}</span></div>
        <div class="serving">{{#serving}}{{{chip}}}{{#weight}} <span class="w">{{.}}%</span>{{/weight}} {{/serving}}{{^serving}}\
        <span class="none">nothing serves</span>{{/serving}}</div>
        {{#split}}<div>{{{split}}}</div>{{/split}}
        {{#desired}}<div class="desired">desired {{{.}}}</div>{{/desired}}
        {{#shadow}}<div>shadow {{{.}}}</div>{{/shadow}}
        {{#last}}<div class="last o-{{outcome}}">{{outcome}}{{#gates}} <span class="gate g-{{passed}}">{{text}}</span>{{/gates}}</div>\
        {{/last}}
        {{#promotable}}<div class="badge promotable">{{#canAct}}<a href="/actions/promote?model={{model}}&amp;\
        to={{environment}}">Promote {{short}} from {{from}}</a>{{/canAct}}{{^canAct}}{{short}} promotable from {{from}}{{/canAct}}\
        </div>{{/promotable}}
        {{#pending}}<div class="badge pending">awaiting approval {{short}}: {{count}} of {{needed}}\
        {{#canAct}} <a href="/actions/approve?model={{model}}&amp;env={{environment}}&amp;\
        version={{version}}">Approve</a> <a href="/actions/reject?model={{model}}&amp;env={{environment}}&amp;\
        version={{version}}">Reject</a>{{/canAct}}</div>{{/pending}}
        {{#canRollBack}}<div class="acts"><a href="/actions/rollback?model={{model}}&amp;env={{environment}}">\
        Roll back to {{rollbackTo}}</a></div>\
        {{/canRollBack}}
        {{/listed}}{{^listed}}<span class="none">not listed</span>{{/listed}}</td>{{/cells}}</tr>
        {{/rows}}
        </tbody>
        </table>
        </div>
        {{#canAct}}<h2>Reconcile</h2><ul class="inline">{{#columns}}<li>\
        <a href="/actions/reconcile?env={{name}}">Reconcile {{name}} now</a></li>{{/columns}}</ul>{{/canAct}}
        """

    static let model = """
        <h1>{{model}}</h1>
        <p class="sub">{{total}} events, newest first. <a href="/api/models/{{model}}">JSON</a></p>
        {{#hasPending}}<h2>Waiting for approval</h2><ul>{{#pending}}<li>{{{chip}}} to {{environment}}, promoted by {{promoter}}\
        : {{count}} of {{needed}}{{#canAct}} · <a href="/actions/approve?model={{model}}&amp;env={{environment}}&amp;\
        version={{version}}">Approve</a> · <a href="/actions/reject?model={{model}}&amp;env={{environment}}&amp;\
        version={{version}}">Reject</a>{{/canAct}}</li>{{/pending}}</ul>{{/hasPending}}
        <h2>Compare two versions</h2>
        <form method="get" action="/models/{{model}}" class="compare">
        <label for="compare-a">Version</label> <select id="compare-a" name="a">{{#versions}}\
        <option value="{{digest}}"{{#selectedA}} selected{{/selectedA}}>{{label}}</option>{{/versions}}</select>
        <label for="compare-b">with</label> <select id="compare-b" name="b">{{#versions}}\
        <option value="{{digest}}"{{#selectedB}} selected{{/selectedB}}>{{label}}</option>{{/versions}}</select>
        <button type="submit">Compare</button>
        </form>
        {{#comparison}}<table class="compare">
        <caption>{{left}} against {{right}}</caption>
        <thead><tr><th scope="col">Field</th><th scope="col">{{left}}</th><th scope="col">{{right}}</th></tr></thead>
        <tbody>{{#rows}}<tr{{#differs}} class="differs"{{/differs}}><th scope="row">{{field}}</th><td>{{left}}</td><td>{{right}}</td>\
        </tr>{{/rows}}</tbody>
        </table>{{/comparison}}
        <h2>Timeline</h2>
        <ol class="timeline">
        {{#events}}<li class="e-{{kind}}"{{#anchor}} id="{{.}}"{{/anchor}}><span class="kind">{{kind}}\
        </span> <time datetime="{{date}}">{{shown}}</time> {{title}}
        {{#chip}} {{{.}}}{{/chip}}{{#environment}} <a href="/environments/{{.}}">{{.}}</a>{{/environment}}{{#commit}} <code>{{.}}\
        </code>{{/commit}}{{#author}} by {{.}}{{/author}}
        {{#hasDetails}}<ul class="details">{{#details}}<li>{{.}}</li>{{/details}}</ul>{{/hasDetails}}</li>
        {{/events}}
        </ol>
        <nav aria-label="Timeline pages" class="pages">{{#previous}}<a href="?page={{.}}">Newer</a>\
        {{/previous}} page {{page}} of {{pages}} {{#next}}<a href="?page={{.}}">Older</a>{{/next}}</nav>
        """

    static let environment = """
        <h1>{{name}}</h1>
        <p class="sub">{{server}} · {{#running}}running{{/running}}{{^running}}not running{{/running}}\
        {{#upstream}} · promoted from {{.}}{{/upstream}}{{#approval}} · approval {{.}}\
        {{/approval}} · <a href="/api/environments/{{name}}">JSON</a></p>
        <h2>Plan</h2>
        {{#planError}}<p class="bad">{{.}}</p>{{/planError}}
        {{#inSync}}<p class="ok">In sync: a reconcile would do nothing.</p>{{/inSync}}
        {{#hasActions}}<ol class="plan">{{#actions}}<li><span class="kind">{{kind}}</span> {{text}}</li>{{/actions}}</ol>{{#canAct}}\
        <p><a href="/actions/reconcile?env={{name}}">Reconcile {{name}} now</a></p>{{/canAct}}{{/hasActions}}
        <h2>Traffic</h2>
        {{#traffic}}<dl class="figures"><div><dt>Requests per second</dt><dd>{{rate}}</dd></div><div><dt>p99 latency</dt><dd>{{p99}}\
        </dd></div><div><dt>Error rate</dt><dd>{{errors}}</dd></div><div><dt>Requests</dt><dd>{{requests}}</dd></div></dl>\
        <p class="sub">Over the {{window}}, from the server's /metrics.</p>{{/traffic}}
        {{^traffic}}<p class="none">No figures: the server does not run.</p>{{/traffic}}
        <h2>Models</h2>
        {{#models}}<section class="model" id="m-{{model}}"><h3><a href="/models/{{model}}">{{model}}\
        </a> <span class="sync s-{{sync}}">{{sync}}</span> <span class="health">{{health}}</span></h3>
        <p>Serving {{#serving}}{{{chip}}}{{#weight}} {{.}}%{{/weight}} {{/serving}}{{^serving}}nothing{{/serving}}</p>
        <h4>Live metrics</h4>{{#live}}{{{.}}}{{/live}}{{^live}}\
        <p class="none">No true labels yet (stagecraft feedback sends them).</p>{{/live}}
        <h4>Drift</h4>{{#drift}}<p>{{rows}} captured rows; {{labels}} with labels.</p>{{#hasAlarms}}<ul class="bad">{{#alarms}}<li>\
        {{.}}</li>{{/alarms}}</ul>{{/hasAlarms}}{{{chart}}}{{/drift}}{{^drift}}\
        <p class="none">No captured requests to compare yet.</p>{{/drift}}
        </section>{{/models}}
        {{#driftError}}<p class="bad">Drift: {{.}}</p>{{/driftError}}
        <details><summary>What PSI means, and what to do</summary>
        <p>The population stability index compares how a feature's values fall into the training data's bins with how the requests'\
         values fall into them: 0 is the same distribution; under 0.1 is usually noise; 0.1 to 0.2 a shift worth watching; past\
         {{psiLimit}} (the dashed line, this environment's monitor.psi) the model sees data unlike what it learned from. The p-value\
         beside each bar (Kolmogorov–Smirnov for numbers, chi-squared for categories) says how likely so large a difference is by\
         chance.</p>
        <p>When features drift: check the source of the requests first (a changed upstream field, units, a new category); then label\
         recent requests (stagecraft feedback) and watch the live metrics; retrain on the new data when they fall (monitor.retrain\
         does it on its own).</p>
        </details>
        """

    static let confirm = """
        <h1>{{heading}}</h1>
        <p>{{summary}}</p>
        {{#error}}<p class="bad">{{.}}</p>{{/error}}
        {{#file}}<h2>The commit</h2><p>On <code>{{branch}}</code>, changing <code>{{file}}</code>:</p>
        <pre class="diff" aria-label="Diff">{{#lines}}<span class="d{{mark}}">{{text}}</span>
        {{/lines}}</pre>
        <pre class="message" aria-label="Commit message">{{message}}</pre>{{/file}}
        {{#hasPlan}}<h2>The plan</h2><ol class="plan">{{#plan}}<li>{{.}}</li>{{/plan}}</ol>{{/hasPlan}}
        {{#canSubmit}}<form method="post" action="{{action}}">
        <input type="hidden" name="csrf" value="{{csrf}}">
        {{#fields}}<input type="hidden" name="{{name}}" value="{{value}}">{{/fields}}
        {{#needsReason}}<p><label for="reason">Reason</label><br><textarea id="reason" name="reason" rows="3" cols="60" required>\
        </textarea></p>{{/needsReason}}
        <button type="submit" class="primary">{{button}}</button> <a href="{{back}}">Cancel</a>
        </form>{{/canSubmit}}
        """

    static let notice = """
        <h1>{{heading}}</h1>
        {{#lines}}<p class="{{kind}}">{{text}}</p>{{/lines}}
        <p><a href="{{back}}">Back</a></p>
        """

    static let login = """
        <h1>Sign in</h1>
        <p>Open the one-time link <code>stagecraft console --login</code> prints, or give a token from <code>stagecraft console\
         --add-token</code>.</p>
        {{#error}}<p class="bad">{{.}}</p>{{/error}}
        <form method="post" action="/login">
        <p><label for="token">Token</label><br><input id="token" name="token" type="password" autocomplete="off" size="70" required></p>
        <button type="submit" class="primary">Sign in</button>
        </form>
        """

    static let stylesheet = """
        :root{--fg:#1d232a;--muted:#5b6570;--line:#d9dee3;--bg:#f6f7f9;--ok:#2f7d3b;--bad:#b3261e;--warn:#9a6700}
        *{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);\
        background:var(--bg)}
        header{display:flex;justify-content:space-between;align-items:center;gap:1rem;padding:.6rem 1.2rem;background:#fff;\
        border-bottom:1px solid var(--line)}
        header nav a{margin-right:.8rem;color:var(--fg);text-decoration:none}header nav a:hover{text-decoration:underline}\
        .brand{font-weight:700}
        .who{display:flex;gap:.6rem;align-items:center;color:var(--muted)}.who form{display:inline}
        #live{font-size:12px;padding:0 .4rem;border-radius:3px;background:#eef0f2}#live.on{background:#dff3e3;color:var(--ok)}
        main{padding:1rem 1.2rem;max-width:1500px}h1{margin:.2rem 0 .3rem;font-size:1.5rem}h2{font-size:1.1rem;margin-top:1.6rem}
        .sub,.meta,.none{color:var(--muted)}.meta{display:block;font-weight:400;font-size:12px}
        .scroll{overflow-x:auto}table{border-collapse:collapse;background:#fff}th,td{border:1px solid var(--line);\
        padding:.45rem .55rem;vertical-align:top;text-align:left}
        caption{text-align:left;color:var(--muted);padding:.3rem 0}.board td{min-width:15rem}
        .h-Healthy{border-top:3px solid var(--ok)}.h-Degraded{border-top:3px solid var(--bad)}\
        .h-Missing{border-top:3px solid var(--warn)}.h-Progressing{border-top:3px solid #2e78a8}
        .sync{font-size:12px;font-weight:600}.s-Synced{color:var(--ok)}.s-OutOfSync{color:var(--warn)}.s-Unknown{color:var(--muted)}\
        .health{font-size:12px;color:var(--muted)}
        .v{display:inline-block;font:12px ui-monospace,monospace;padding:1px 5px;border-radius:3px;border-left:5px solid var(--v);\
        background:#eef1f4;color:var(--fg);text-decoration:none;margin:1px 0}
        .w{font-size:12px;color:var(--muted)}.desired,.last{font-size:12px;color:var(--muted);margin-top:.2rem}
        .gate{display:inline-block;font-size:11px;padding:0 4px;border-radius:3px}.g-true{background:#e3f1e5}\
        .g-false{background:#f7e1df;color:var(--bad)}
        .o-failed{color:var(--bad)}.badge{margin-top:.3rem;font-size:12px;padding:2px 6px;border-radius:3px;display:inline-block}
        .promotable{background:#e8f0fb}.pending{background:#fff3d6}.acts{margin-top:.3rem;font-size:12px}
        .ok{color:var(--ok)}.bad{color:var(--bad)}ul.inline{list-style:none;padding:0;display:flex;gap:1rem}
        .timeline{list-style:none;padding:0}.timeline>li{background:#fff;border:1px solid var(--line);\
        border-left:4px solid var(--line);padding:.4rem .6rem;margin:.3rem 0}
        .e-promotion{border-left-color:#2e78a8!important}.e-approval{border-left-color:#7a4eb3!important}\
        .e-rollback{border-left-color:var(--warn)!important}
        .e-verification{border-left-color:var(--ok)!important}.e-build{border-left-color:#8a949e!important}
        .kind{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);margin-right:.3rem}\
        .details{margin:.2rem 0 0;font-size:12px;color:var(--muted)}
        .differs td{background:#fff3d6}pre{background:#fff;border:1px solid var(--line);padding:.6rem;overflow-x:auto}
        .d-{color:var(--bad);background:#fbe9e7;display:block}.d\\+{color:var(--ok);background:#e6f4ea;display:block}.d_{display:block}
        dl.figures{display:flex;gap:1.5rem}dl.figures div{background:#fff;border:1px solid var(--line);padding:.5rem .8rem}\
        dt{font-size:12px;color:var(--muted)}dd{margin:0;font-size:1.3rem}
        section.model{background:#fff;border:1px solid var(--line);padding:.2rem .9rem .8rem;margin:.6rem 0}
        button,.primary{font:inherit;padding:.3rem .8rem;border:1px solid #8a949e;border-radius:4px;background:#fff;cursor:pointer}\
        button.primary{background:#1d5fa8;color:#fff;border-color:#1d5fa8}
        footer{padding:1rem 1.2rem;color:var(--muted);font-size:12px}
        """

    /// Live updates, on pages marked `data-live="on"`: on each `change` from `/events` (and every `data-refresh` seconds
    /// on pages that ask), the page is fetched again and its `<main>` replaced, without reloading.
    static let script = """
        (function () {
          if (document.body.getAttribute('data-live') !== 'on') return;
          var live = document.getElementById('live');
          var busy = false;
          function refresh() {
            if (busy) return;
            busy = true;
            fetch(location.href, {headers: {'Accept': 'text/html'}, credentials: 'same-origin'}).then(function (response) {
              return response.ok ? response.text() : null;
            }).then(function (text) {
              if (!text) return;
              var fresh = new DOMParser().parseFromString(text, 'text/html').getElementById('main');
              var current = document.getElementById('main');
              var editing = document.activeElement && document.activeElement.form ? document.activeElement : null;
              if (fresh && current && !current.contains(editing)) {
                // What the reader opened stays open.
                var opened = Array.prototype.map.call(current.querySelectorAll('details'), function (d) { return d.open; });
                Array.prototype.forEach.call(fresh.querySelectorAll('details'), function (d, i) { if (opened[i]) d.open = true; });
                current.replaceWith(fresh);
                document.body.setAttribute('data-updated', String(Date.now()));
              }
            }).catch(function () {}).then(function () { busy = false; });
          }
          if (window.EventSource) {
            var source = new EventSource('/events');
            source.addEventListener('open', function () { live.textContent = 'live'; live.className = 'on'; });
            source.addEventListener('error', function () { live.textContent = 'reconnecting'; live.className = ''; });
            source.addEventListener('change', refresh);
          }
          var every = Number(document.body.getAttribute('data-refresh') || 0);
          if (every > 0) setInterval(refresh, every * 1000);
        })();
        """
}
