//! `koreo graph`: a Workflow's steps as the DAG they run as (edges from `steps.<label>`
//! reads), with what each step runs, its loop, switch and skip condition, and the steps of
//! the Workflows it runs nested inside it; as DOT, Mermaid or SVG.

use koreo_lang::Workspace;
use koreo_lang::model::{LogicKind, LogicRef, StepLogic, Workflow};

/// A Workflow drawn: its steps and which waits for which.
#[derive(Debug)]
pub struct Graph {
    pub name: String,
    pub steps: Vec<StepNode>,
    /// (from, to): `to` reads `from`'s result, so it runs after it.
    pub edges: Vec<(usize, usize)>,
}

#[derive(Debug)]
pub struct StepNode {
    /// Unique in the whole drawing (nested steps are prefixed with their step's id).
    pub id: String,
    /// The label first, then what it runs and how.
    pub lines: Vec<String>,
    /// It has a `skipIf`: it may not run.
    pub may_skip: bool,
    /// The steps of the Workflow it runs, drawn inside it.
    pub nested: Option<Graph>,
}

/// How deep Workflows run as steps are drawn inside each other.
const MAX_NESTING: usize = 8;

/// The drawing of `w`: its steps, and those of the Workflows it runs, found in `ws`.
pub fn build(ws: &Workspace, w: &Workflow) -> Graph {
    build_within(ws, w, "", &mut vec![w.meta.name.clone()])
}

fn build_within(ws: &Workspace, w: &Workflow, prefix: &str, path: &mut Vec<String>) -> Graph {
    let namespace = w.meta.namespace.as_deref();
    let steps = w
        .steps
        .iter()
        .map(|step| {
            let id = format!("{prefix}{}", step.label);
            let mut lines = vec![step.label.clone()];
            let mut nested_ref: Option<&LogicRef> = None;
            match &step.logic {
                StepLogic::Ref(r) => {
                    lines.push(format!("{} {}", r.kind.as_str(), r.name));
                    nested_ref = Some(r).filter(|r| r.kind == LogicKind::Workflow);
                }
                StepLogic::Switch { switch_on, cases } => {
                    lines.push(format!("switch on {}", switch_on.source));
                    for case in cases {
                        let default = if case.default { " (default)" } else { "" };
                        lines.push(format!(
                            "{}{default}: {} {}",
                            case.case,
                            case.logic.kind.as_str(),
                            case.logic.name
                        ));
                    }
                }
            }
            if let Some(each) = &step.for_each {
                lines.push(format!(
                    "for each {} in {}",
                    each.input_key, each.item_in.source
                ));
            }
            if let Some(skip) = &step.skip_if {
                lines.push(format!("skip if {}", skip.source));
            }
            let nested = nested_ref
                .filter(|r| !path.contains(&r.name) && path.len() < MAX_NESTING)
                .and_then(|r| ws.workflow(&r.name, namespace))
                .map(|inner| {
                    path.push(inner.meta.name.clone());
                    let graph = build_within(ws, inner, &format!("{id}/"), path);
                    path.pop();
                    graph
                });
            StepNode {
                id,
                lines,
                may_skip: step.skip_if.is_some(),
                nested,
            }
        })
        .collect();
    let edges = w
        .graph
        .dependencies
        .iter()
        .enumerate()
        .flat_map(|(to, from)| from.iter().map(move |&from| (from, to)))
        .collect();
    Graph {
        name: w.meta.name.clone(),
        steps,
        edges,
    }
}

/// Graphviz DOT: sub-workflows as clusters.
pub fn dot(graph: &Graph) -> String {
    let mut out = format!(
        "digraph {} {{\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"sans-serif\"];\n",
        dot_quote(&graph.name)
    );
    dot_body(graph, 1, &mut out);
    out.push_str("}\n");
    out
}

fn dot_body(graph: &Graph, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    for step in &graph.steps {
        let style = if step.may_skip {
            ", style=\"rounded,dashed\""
        } else {
            ""
        };
        out.push_str(&format!(
            "{pad}{} [label={}{style}];\n",
            dot_quote(&step.id),
            dot_quote(&step.lines.join("\n"))
        ));
        if let Some(inner) = &step.nested {
            out.push_str(&format!(
                "{pad}subgraph {} {{\n{pad}  label={};\n{pad}  style=dashed;\n",
                dot_quote(&format!("cluster_{}", step.id)),
                dot_quote(&format!("Workflow {}", inner.name))
            ));
            dot_body(inner, depth + 1, out);
            out.push_str(&format!("{pad}}}\n"));
            for root in roots(inner) {
                out.push_str(&format!(
                    "{pad}{} -> {} [style=dotted];\n",
                    dot_quote(&step.id),
                    dot_quote(&inner.steps[root].id)
                ));
            }
        }
    }
    for (from, to) in &graph.edges {
        out.push_str(&format!(
            "{pad}{} -> {};\n",
            dot_quote(&graph.steps[*from].id),
            dot_quote(&graph.steps[*to].id)
        ));
    }
}

/// Steps that wait for none.
fn roots(graph: &Graph) -> Vec<usize> {
    (0..graph.steps.len())
        .filter(|i| !graph.edges.iter().any(|(_, to)| to == i))
        .collect()
}

fn dot_quote(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// Mermaid `flowchart`: sub-workflows as subgraphs.
pub fn mermaid(graph: &Graph) -> String {
    let mut ids = Vec::new();
    let mut out = format!("%% Workflow {}\nflowchart TD\n", graph.name);
    mermaid_body(graph, 1, &mut ids, &mut out);
    out
}

fn mermaid_body(graph: &Graph, depth: usize, ids: &mut Vec<String>, out: &mut String) {
    let pad = "  ".repeat(depth);
    // Mermaid ids are plain words: each step gets `s<n>`, its label the text.
    let id_of = |ids: &mut Vec<String>, step: &str| match ids.iter().position(|i| i == step) {
        Some(n) => format!("s{n}"),
        None => {
            ids.push(step.to_string());
            format!("s{}", ids.len() - 1)
        }
    };
    for step in &graph.steps {
        let id = id_of(ids, &step.id);
        let text = step
            .lines
            .iter()
            .map(|l| mermaid_text(l))
            .collect::<Vec<_>>()
            .join("<br/>");
        out.push_str(&format!("{pad}{id}[\"{text}\"]\n"));
        if step.may_skip {
            out.push_str(&format!("{pad}style {id} stroke-dasharray: 5 5\n"));
        }
        if let Some(inner) = &step.nested {
            let sub = format!("{id}_workflow");
            out.push_str(&format!(
                "{pad}subgraph {sub}[\"Workflow {}\"]\n",
                mermaid_text(&inner.name)
            ));
            mermaid_body(inner, depth + 1, ids, out);
            out.push_str(&format!("{pad}end\n{pad}{id} -.-> {sub}\n"));
        }
    }
    for (from, to) in &graph.edges {
        let from = id_of(ids, &graph.steps[*from].id);
        let to = id_of(ids, &graph.steps[*to].id);
        out.push_str(&format!("{pad}{from} --> {to}\n"));
    }
}

fn mermaid_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "#quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// SVG, laid out by layout-rs: sub-workflow steps follow their step, dotted. layout-rs asserts
/// on shapes it cannot place; such a graph is an SVG that says so rather than a crash.
pub fn svg(graph: &Graph) -> String {
    let laid_out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| layout_svg(graph)));
    laid_out.unwrap_or_else(|_| {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"480\" height=\"40\"><text x=\"8\" y=\"24\">Workflow {}: this graph could not be laid out; try --format dot</text></svg>",
            graph.name.replace('&', "&amp;").replace('<', "&lt;")
        )
    })
}

fn layout_svg(graph: &Graph) -> String {
    use layout::backends::svg::SVGWriter;
    use layout::core::base::Orientation;
    use layout::core::style::{LineStyleKind, StyleAttr};
    use layout::std_shapes::render::get_shape_size;
    use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
    use layout::topo::layout::VisualGraph;

    let mut vg = VisualGraph::new(Orientation::TopToBottom);
    let mut handles = Vec::new();
    let mut flat = Vec::new();
    flatten(graph, &mut flat);
    for (step, _) in &flat {
        let shape = ShapeKind::new_box(&step.lines.join("\n"));
        let look = StyleAttr::simple();
        let size = get_shape_size(Orientation::TopToBottom, &shape, look.font_size, false);
        handles.push(vg.add_node(Element::create(shape, look, Orientation::TopToBottom, size)));
    }
    let index = |id: &str| flat.iter().position(|(s, _)| s.id == id);
    let mut edges = Vec::new();
    edge_ids(graph, &mut edges);
    for (from, to, into_workflow) in edges {
        let (Some(from), Some(to)) = (index(from), index(to)) else {
            continue;
        };
        let style = if into_workflow {
            LineStyleKind::Dotted
        } else {
            LineStyleKind::Normal
        };
        let arrow = Arrow::new(
            LineEndKind::None,
            LineEndKind::Arrow,
            style,
            "",
            &StyleAttr::simple(),
            &None,
            &None,
        );
        vg.add_edge(arrow, handles[from], handles[to]);
    }
    let mut writer = SVGWriter::new();
    vg.do_it(false, false, false, &mut writer);
    writer.finalize()
}

/// Every edge by step ids, with whether it leads into the Workflow a step runs.
fn edge_ids<'g>(graph: &'g Graph, out: &mut Vec<(&'g str, &'g str, bool)>) {
    for (from, to) in &graph.edges {
        out.push((&graph.steps[*from].id, &graph.steps[*to].id, false));
    }
    for step in &graph.steps {
        if let Some(inner) = &step.nested {
            for root in roots(inner) {
                out.push((&step.id, &inner.steps[root].id, true));
            }
            edge_ids(inner, out);
        }
    }
}

/// Every step with the graph it belongs to, nested ones after their step.
fn flatten<'g>(graph: &'g Graph, out: &mut Vec<(&'g StepNode, &'g Graph)>) {
    for step in &graph.steps {
        out.push((step, graph));
        if let Some(inner) = &step.nested {
            flatten(inner, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_step_says_is_text_in_every_format() {
        let text = "apiVersion: koreo.dev/v1beta1\nkind: Workflow\nmetadata: {name: w, namespace: default}\nspec:\n  steps:\n  - label: first\n    ref: {kind: ValueFunction, name: f}\n    skipIf: '=\"<b>\" == \"x\\\"y\"'\n";
        let ws = Workspace::load_str("w.koreo", text);
        let Some(koreo_lang::model::Definition::Workflow(w)) = ws.definitions.first() else {
            panic!("{:?}", ws.diagnostics);
        };
        let graph = build(&ws, w);
        assert!(graph.steps[0].may_skip);
        let svg = svg(&graph);
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
        assert!(
            dot(&graph).contains(r#"skip if \"<b>\" == \"x\\\"y\""#),
            "{}",
            dot(&graph)
        );
        let mermaid = mermaid(&graph);
        assert!(
            mermaid.contains("skip if #quot;&lt;b&gt;#quot;"),
            "{mermaid}"
        );
        assert!(mermaid.contains("style s0 stroke-dasharray"), "{mermaid}");
    }
}
