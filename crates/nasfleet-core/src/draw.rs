//! Pictures of architectures, with no external renderer: a [`Drawing`] (boxes
//! and labelled edges on levels, data flowing downwards) made from any
//! [`Architecture`], written as Graphviz dot text or as a self-contained SVG
//! laid out here. Kept free of any command so that a dashboard can reuse it.
//!
//! - CNN: the image, one box per layer (filter size, filters, strides,
//!   pooling, output shape when the input shape is known), the final
//!   concatenation and the classifier; every input of every layer is an
//!   edge, skip connections (from any layer but the previous one) drawn as
//!   curves.
//! - Recurrent cell: x_t and h_{t-1} feeding the leaves, the tree of
//!   combinations and activations up to the root, c_{t-1} entering the
//!   inject node, h_t from the root and c_t from the cell node.
//! - NAS-Bench-201: the 4 nodes of the cell and its 6 edges with their ops
//!   (`none` edges dashed).

use std::fmt::Write as _;

use crate::arch::Architecture;
use crate::space::cnn::CnnArch;
use crate::space::nb201::{Nb201Arch, Nb201Op, EDGES};
use crate::space::rnn_cell::{Activation, CellArch, Combine};

/// One box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Lines of text in the box.
    pub label: Vec<String>,
    /// Row, top first; edges go from lower to higher levels.
    pub level: usize,
}

/// One arrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Index of the source node.
    pub from: usize,
    /// Index of the target node.
    pub to: usize,
    /// Text beside the arrow.
    pub label: Option<String>,
    /// Drawn dashed (an NB201 `none` edge).
    pub dashed: bool,
}

/// A picture of an architecture, ready to be written as dot or SVG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drawing {
    /// The caption.
    pub title: String,
    /// The boxes.
    pub nodes: Vec<Node>,
    /// The arrows.
    pub edges: Vec<Edge>,
}

fn combine_name(c: Combine) -> &'static str {
    c.name()
}

fn act_name(a: Activation) -> &'static str {
    a.name()
}

impl Drawing {
    /// The drawing of `arch`; `cnn_input` = ((C, H, W), classes) adds a
    /// CNN's shapes (it is ignored for the other spaces).
    pub fn of(arch: &Architecture, cnn_input: Option<((usize, usize, usize), usize)>) -> Drawing {
        match arch {
            Architecture::Cnn(a) => Drawing::cnn(a, cnn_input),
            Architecture::RnnCell(a) => Drawing::cell(a),
            Architecture::Nb201(a) => Drawing::nb201(a),
        }
    }

    fn cnn(arch: &CnnArch, input: Option<((usize, usize, usize), usize)>) -> Drawing {
        let graph = input.map(|(i, c)| arch.resolve(i, c));
        let shape = |s: [usize; 3]| format!("{}x{}x{}", s[0], s[1], s[2]);
        let mut nodes = vec![Node {
            label: vec![match &graph {
                Some(g) => format!("image {}", shape(g.input_shape)),
                None => "image".to_string(),
            }],
            level: 0,
        }];
        let mut edges = Vec::new();
        let n = arch.layers.len();
        for (i, l) in arch.layers.iter().enumerate() {
            let mut label = vec![
                format!("layer {i}: conv {}x{}", l.filter_height, l.filter_width),
                format!("{} filters, stride {}x{}", l.filters, l.stride_height, l.stride_width),
            ];
            if arch.max_pool_after.contains(&i) {
                label.push("max-pool 2x2".to_string());
            }
            if let Some(g) = &graph {
                label.push(format!("out {}", shape(g.layers[i].output_shape)));
            }
            nodes.push(Node { label, level: i + 1 });
            if l.inputs.is_empty() {
                edges.push(Edge { from: 0, to: i + 1, label: None, dashed: false });
            }
            for &j in &l.inputs {
                edges.push(Edge { from: j + 1, to: i + 1, label: None, dashed: false });
            }
        }
        let mut consumed = vec![false; n];
        for l in &arch.layers {
            for &j in &l.inputs {
                consumed[j] = true;
            }
        }
        let concat = nodes.len();
        nodes.push(Node {
            label: vec![match &graph {
                Some(g) => format!("concat {}", shape(g.final_shape)),
                None => "concat".to_string(),
            }],
            level: n + 1,
        });
        for j in (0..n).filter(|&j| !consumed[j]) {
            edges.push(Edge { from: j + 1, to: concat, label: None, dashed: false });
        }
        nodes.push(Node {
            label: vec![match &graph {
                Some(g) => format!("global avg pool, linear -> {} classes", g.classes),
                None => "global avg pool, linear".to_string(),
            }],
            level: n + 2,
        });
        edges.push(Edge { from: concat, to: concat + 1, label: None, dashed: false });
        let title = match &graph {
            Some(g) => format!("CNN child: {n} layers, {} parameters", g.params),
            None => format!("CNN child: {n} layers"),
        };
        Drawing { title, nodes, edges }
    }

    fn cell(arch: &CellArch) -> Drawing {
        let n = arch.node_count();
        let depth = arch.base.trailing_zeros() as usize; // levels above the leaves
        // Level of tree node k: leaves at 1, the root at depth + 1.
        let mut level_of = vec![1usize; n];
        let (mut start, mut width, mut level) = (0usize, arch.base, 1usize);
        while width >= 1 && start < n {
            for l in level_of.iter_mut().skip(start).take(width) {
                *l = level;
            }
            start += width;
            width /= 2;
            level += 1;
        }
        let mut nodes = vec![Node { label: vec!["x_t, h_{t-1}".to_string()], level: 0 }];
        let mut edges = Vec::new();
        for (k, (&node, &level)) in arch.nodes.iter().zip(&level_of).enumerate() {
            let mut label = vec![format!("node {k}: {}, {}", combine_name(node.combine), act_name(node.activation))];
            if arch.children(k).is_none() {
                label.push(format!("W{}·x_t, W{}·h_{{t-1}}", 2 * k + 1, 2 * k + 2));
            }
            nodes.push(Node { label, level });
            match arch.children(k) {
                None => edges.push(Edge { from: 0, to: k + 1, label: None, dashed: false }),
                Some((l, r)) => {
                    edges.push(Edge { from: l + 1, to: k + 1, label: None, dashed: false });
                    edges.push(Edge { from: r + 1, to: k + 1, label: None, dashed: false });
                }
            }
        }
        let c_prev = nodes.len();
        nodes.push(Node { label: vec!["c_{t-1}".to_string()], level: 0 });
        edges.push(Edge {
            from: c_prev,
            to: arch.inject.node + 1,
            label: Some(format!(
                "inject: {}, {}",
                combine_name(arch.inject.combine),
                act_name(arch.inject.activation)
            )),
            dashed: false,
        });
        let out_level = depth + 2;
        nodes.push(Node { label: vec!["h_t".to_string()], level: out_level });
        edges.push(Edge { from: n, to: c_prev + 1, label: None, dashed: false });
        nodes.push(Node { label: vec!["c_t".to_string()], level: out_level });
        edges.push(Edge { from: arch.cell_node + 1, to: c_prev + 2, label: Some("pre-activation".to_string()), dashed: false });
        Drawing { title: format!("recurrent cell: base {}, {n} nodes", arch.base), nodes, edges }
    }

    fn nb201(arch: &Nb201Arch) -> Drawing {
        let nodes = (0..4)
            .map(|i| Node {
                label: vec![match i {
                    0 => "node 0 (input)".to_string(),
                    3 => "node 3 (output)".to_string(),
                    _ => format!("node {i}"),
                }],
                level: i,
            })
            .collect();
        let edges = EDGES
            .iter()
            .zip(arch.ops)
            .map(|(&(a, b), op)| Edge { from: a, to: b, label: Some(op.name().to_string()), dashed: op == Nb201Op::None })
            .collect();
        Drawing { title: format!("NAS-Bench-201 cell {}", arch.to_nb201_string()), nodes, edges }
    }

    /// Graphviz dot text (render with `dot -Tpng`, if you have it).
    pub fn dot(&self) -> String {
        let mut s = String::from("digraph architecture {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n");
        let _ = writeln!(s, "  label=\"{}\";\n  labelloc=t;", dot_escape(&self.title));
        for (i, n) in self.nodes.iter().enumerate() {
            let _ = writeln!(s, "  n{i} [label=\"{}\"];", n.label.iter().map(|l| dot_escape(l)).collect::<Vec<_>>().join("\\n"));
        }
        let mut levels: Vec<usize> = self.nodes.iter().map(|n| n.level).collect();
        levels.sort_unstable();
        levels.dedup();
        for lv in levels {
            let ids: Vec<String> =
                self.nodes.iter().enumerate().filter(|(_, n)| n.level == lv).map(|(i, _)| format!("n{i}")).collect();
            let _ = writeln!(s, "  {{ rank=same; {}; }}", ids.join("; "));
        }
        for e in &self.edges {
            let mut attrs = Vec::new();
            if let Some(l) = &e.label {
                attrs.push(format!("label=\"{}\"", dot_escape(l)));
            }
            if e.dashed {
                attrs.push("style=dashed".to_string());
            }
            let attrs = if attrs.is_empty() { String::new() } else { format!(" [{}]", attrs.join(", ")) };
            let _ = writeln!(s, "  n{} -> n{}{attrs};", e.from, e.to);
        }
        s.push_str("}\n");
        s
    }

    /// A self-contained SVG: levels as rows, boxes centred in their row,
    /// arrows between box edges, an arrow spanning several rows as a curve
    /// to the side (a CNN's skip connections).
    pub fn svg(&self) -> String {
        const LINE: f64 = 16.0;
        const CHAR: f64 = 7.2;
        const GAP_X: f64 = 40.0;
        const GAP_Y: f64 = 50.0;
        const MARGIN: f64 = 30.0;
        const TOP: f64 = 50.0;
        let levels = self.nodes.iter().map(|n| n.level).max().map_or(0, |m| m + 1);
        let size = |n: &Node| -> (f64, f64) {
            let chars = n.label.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
            (chars * CHAR + 20.0, n.label.len() as f64 * LINE + 12.0)
        };
        let row_height: Vec<f64> = (0..levels)
            .map(|lv| self.nodes.iter().filter(|n| n.level == lv).map(|n| size(n).1).fold(0.0, f64::max))
            .collect();
        let row_width: Vec<f64> = (0..levels)
            .map(|lv| {
                let ws: Vec<f64> = self.nodes.iter().filter(|n| n.level == lv).map(|n| size(n).0).collect();
                ws.iter().sum::<f64>() + GAP_X * (ws.len().saturating_sub(1)) as f64
            })
            .collect();
        let spans = self.edges.iter().filter_map(|e| {
            let (a, b) = (self.nodes[e.from].level, self.nodes[e.to].level);
            (b > a + 1).then_some(b - a)
        });
        let bulge = spans.max().map_or(0.0, |s| 40.0 + 12.0 * s as f64);
        let inner = row_width.iter().copied().fold(200.0, f64::max);
        let width = inner + 2.0 * MARGIN + 2.0 * bulge + 120.0;
        let centre = width / 2.0;
        let mut row_y = Vec::with_capacity(levels);
        let mut y = TOP;
        for h in &row_height {
            row_y.push(y);
            y += h + GAP_Y;
        }
        let height = y + MARGIN;
        // Box of each node: (x, y, w, h).
        let mut boxes = vec![(0.0, 0.0, 0.0, 0.0); self.nodes.len()];
        for lv in 0..levels {
            let mut x = centre - row_width[lv] / 2.0;
            for (i, n) in self.nodes.iter().enumerate().filter(|(_, n)| n.level == lv) {
                let (w, h) = size(n);
                boxes[i] = (x, row_y[lv] + (row_height[lv] - h) / 2.0, w, h);
                x += w + GAP_X;
            }
        }
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">"
        );
        s.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#444\"/></marker></defs>\n");
        let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        let _ = writeln!(s, "<text x=\"{centre:.1}\" y=\"24\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>", xml_escape(&self.title));
        let mut side = 0usize;
        for e in &self.edges {
            let (fx, fy, fw, fh) = boxes[e.from];
            let (tx, ty, tw, _) = boxes[e.to];
            let (x1, y1) = (fx + fw / 2.0, fy + fh);
            let (x2, y2) = (tx + tw / 2.0, ty);
            let dash = if e.dashed { " stroke-dasharray=\"5,4\"" } else { "" };
            let span = self.nodes[e.to].level.saturating_sub(self.nodes[e.from].level);
            let (path, lx, ly) = if span > 1 {
                // A skip: leave the box's side and come back in on the same side,
                // alternating sides so that parallel skips do not overlap.
                let right = side.is_multiple_of(2);
                side += 1;
                let sign = if right { 1.0 } else { -1.0 };
                let (sx, sy) = (if right { fx + fw } else { fx }, fy + fh / 2.0);
                let (ex, ey) = (if right { tx + tw } else { tx }, ty + boxes[e.to].3 / 2.0);
                let out = sign * (40.0 + 12.0 * span as f64);
                (
                    format!(
                        "M {sx:.1} {sy:.1} C {:.1} {sy:.1}, {:.1} {ey:.1}, {ex:.1} {ey:.1}",
                        sx + out,
                        ex + out
                    ),
                    (sx + ex) / 2.0 + out * 0.75,
                    (sy + ey) / 2.0,
                )
            } else {
                (format!("M {x1:.1} {y1:.1} L {x2:.1} {y2:.1}"), (x1 + x2) / 2.0 + 4.0, (y1 + y2) / 2.0)
            };
            let _ = writeln!(
                s,
                "<path d=\"{path}\" fill=\"none\" stroke=\"#444\" stroke-width=\"1.3\"{dash} marker-end=\"url(#arrow)\"/>"
            );
            if let Some(l) = &e.label {
                let _ = writeln!(s, "<text x=\"{lx:.1}\" y=\"{ly:.1}\" fill=\"#a33\">{}</text>", xml_escape(l));
            }
        }
        for (n, (x, y, w, h)) in self.nodes.iter().zip(&boxes) {
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"6\" fill=\"#eef3fb\" stroke=\"#345\"/>"
            );
            for (k, line) in n.label.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    x + w / 2.0,
                    y + 6.0 + LINE * (k as f64 + 0.8),
                    xml_escape(line)
                );
            }
        }
        s.push_str("</svg>\n");
        s
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::rnn_cell::CellSpace;
    use crate::ArchLimits;

    fn cnn() -> Architecture {
        let json = r#"{"version":1,"space":"cnn","layers":[
            {"filter_height":3,"filter_width":5,"stride_height":2,"stride_width":1,"filters":24,"inputs":[]},
            {"filter_height":3,"filter_width":3,"filters":36,"inputs":[0]},
            {"filter_height":1,"filter_width":1,"filters":48,"inputs":[]},
            {"filter_height":3,"filter_width":3,"filters":24,"inputs":[0,1,2]}],"max_pool_after":[1]}"#;
        Architecture::from_json(json.as_bytes(), &ArchLimits::default()).unwrap()
    }

    #[test]
    fn a_cnn_has_a_box_per_layer_and_an_edge_per_input() {
        let d = Drawing::of(&cnn(), Some(((1, 28, 28), 10)));
        // image, 4 layers, concat, classifier
        assert_eq!(d.nodes.len(), 7);
        assert!(d.nodes[1].label[0].contains("conv 3x5") && d.nodes[1].label[1].contains("stride 2x1"));
        assert!(d.nodes[2].label.iter().any(|l| l == "max-pool 2x2"));
        // inputs: 0<-image, 1<-0, 2<-image, 3<-0,1,2; final: 3 -> concat; concat -> fc
        let pairs: Vec<(usize, usize)> = d.edges.iter().map(|e| (e.from, e.to)).collect();
        assert_eq!(pairs, vec![(0, 1), (1, 2), (0, 3), (1, 4), (2, 4), (3, 4), (4, 5), (5, 6)]);
        let svg = d.svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("marker-end=").count(), d.edges.len());
        // The skip 0 -> 3 (three rows) is a curve.
        assert!(svg.contains(" C "));
        let dot = d.dot();
        assert!(dot.contains("n1 -> n4;") && dot.contains("layer 3: conv 3x3"));
    }

    #[test]
    fn a_cell_is_its_tree_and_nb201_its_six_edges() {
        let cell = CellSpace { base: 4, extended: false }.decode(&[0; 18]).unwrap();
        let d = Drawing::of(&Architecture::RnnCell(cell), None);
        // inputs, 7 nodes, c_{t-1}, h_t, c_t
        assert_eq!(d.nodes.len(), 11);
        // 4 leaf inputs, 3·2 children, inject, h_t, c_t
        assert_eq!(d.edges.len(), 4 + 6 + 3);
        assert!(d.edges.iter().any(|e| e.label.as_deref().is_some_and(|l| l.starts_with("inject: add"))));
        let nb = Nb201Arch::parse_nb201_str("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|").unwrap();
        let d = Drawing::of(&Architecture::Nb201(nb), None);
        assert_eq!(d.nodes.len(), 4);
        assert_eq!(d.edges.len(), 6);
        assert_eq!(d.edges.iter().filter(|e| e.dashed).count(), 2);
        assert!(d.svg().contains(">nor_conv_3x3</text>"));
        assert!(d.dot().contains("n0 -> n1 [label=\"nor_conv_3x3\"];"));
    }
}
