// uPlot's stylesheet, imported as text by client.ts (`with { type: 'text' }`: esbuild inlines the
// file as a string, so the page's one script carries its CSS and nothing else needs serving).
declare module 'uplot/dist/uPlot.min.css' {
  const css: string;
  export default css;
}
