// A small SVG line-chart writer for the bench report: axes with ticks, one polyline per series,
// a legend. Produces a standalone SVG document as a string. Pure; safe from any thread.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tinyserve::bench {

struct ChartSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in the given order.
};

struct LineChart {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log2_x = false;  // For user counts 1, 2, 4, ... 64.
  std::vector<ChartSeries> series;
  // Values in milliseconds: ticks read "250 ms", or "1.5 s" once the axis passes 2 s.
  bool x_ms = false, y_ms = false;
};

// Renders the chart (width x height pixels). Empty series or a single point are drawn with a
// default range; non-finite points are skipped.
std::string RenderSvg(const LineChart& chart, int width = 640, int height = 400);

// "12,345.68": fixed notation with `decimals` digits and thousands separators (reports and ticks).
std::string FormatGrouped(double v, int decimals);

// Escapes &, <, >, " for SVG text and attributes.
std::string XmlEscape(const std::string& text);

}  // namespace tinyserve::bench
